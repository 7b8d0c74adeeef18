"""The composed benchmark on the real shared data: layout, split disjointness, manifest, media,
determinism, reuse, bad sources, and the `compose` command."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from emonets.media.audio_io import load_audio
from emonets.datasets.compose.dataset import (ComposeConfig, compose_clip, compose_dataset, is_composed, plan_clips, scan_faces,
                             scan_speech)
from emonets.datasets.readers import RAVDESS_EMOTIONS, read_afew
from emonets.labels import EMOTIONS, normalise_label
from emonets.media.video import iter_frames, probe
from conftest import shared_path

EMOTION_FOLDERS = ["Angry", "Disgust", "Fear", "Happy", "Neutral", "Sad", "Surprise"]
SECONDS = 0.4


@pytest.fixture(scope="module")
def sources():
    return shared_path("fer2013"), shared_path("ravdess-speech")


@pytest.fixture(scope="module")
def composed(sources, tmp_path_factory):
    out = tmp_path_factory.mktemp("composed")
    summary = compose_dataset(*sources, out, per_class=1, seed=0, max_seconds=SECONDS)
    return out, summary, json.loads((out / "compose.json").read_text())


@pytest.fixture(scope="module")
def scanned(sources):
    return scan_faces(sources[0])[0], scan_speech(sources[1])[0]


def test_tree_is_afew_style(composed):
    out, summary, _ = composed
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == ["Test", "Train", "Val"]
    for split in ("Train", "Val", "Test"):
        assert sorted(p.name for p in (out / split).iterdir()) == EMOTION_FOLDERS
        for emotion in EMOTION_FOLDERS:
            assert len(list((out / split / emotion).glob("*.mp4"))) == 1
    assert summary["clips"] == 21 and summary["problems"] == []
    assert not list(out.rglob(".tmp-*"))
    scan = read_afew(out)
    assert len(scan.candidates) == 21 and not scan.problems
    assert len({c.clip_id for c in scan.candidates}) == 21
    assert is_composed(out)


def test_manifest_sources_labels_and_disjoint_splits(composed, sources):
    out, _, manifest = composed
    clips = manifest["clips"]
    assert manifest["name"] == "composed" and manifest["status"] == "complete" and manifest["seed"] == 0
    assert "calm" in manifest["dropped_classes"] and manifest["dropped_speech_files"]["calm"] == 144
    assert {"fer2013", "ravdess"} <= set(manifest["licences"])
    assert "CC BY-NC-SA 4.0" in (out / "README.txt").read_text()
    assert len({c["face"] for c in clips}) == len(clips) == len({c["speech"] for c in clips})
    for c in clips:
        face_split, face_class = c["face"].split("/")[:2]
        assert normalise_label(face_class) == c["label"]
        code = re.match(r"^\d\d-\d\d-(\d\d)-", Path(c["speech"]).name).group(1)
        assert normalise_label(RAVDESS_EMOTIONS[code]) == c["label"]
        assert (sources[0] / c["face"]).is_file() and (sources[1] / c["speech"]).is_file()
        assert c["path"].startswith(f"{c['split'].capitalize()}/{c['label'].capitalize()}/")
        assert face_split == ("train" if c["split"] == "train" else "val")  # Val and Test: held-out faces
        lo, hi = {"train": (1, 10), "val": (11, 14), "test": (15, 18)}[c["split"]]
        assert lo <= c["actor"] <= hi
    actors = {s: {c["actor"] for c in clips if c["split"] == s} for s in ("train", "val", "test")}
    assert not (actors["train"] & actors["val"]) and not (actors["val"] & actors["test"])


def test_clip_decodes_with_both_streams(composed):
    out, _, manifest = composed
    entry = manifest["clips"][0]
    path = out / entry["path"]
    info = probe(path)
    assert info.has_video and info.has_audio and (info.width, info.height) == (320, 240) and info.fps == 25
    frames = [f.image for f in iter_frames(path, fps=25)]
    assert len(frames) == entry["frames"] == int(np.ceil(SECONDS * 25))
    assert frames[0].shape == (240, 320, 3)
    centre = frames[0][60:180, 100:220].astype(float)
    corner = frames[0][:30, :30].astype(float)
    assert centre.std() > 2 * corner.std()  # a face in the middle, a flat background around it
    assert np.abs(frames[0].astype(float) - frames[-1].astype(float)).mean() > 0.5  # it moves
    audio = load_audio(path, sr=16000)
    assert abs(len(audio) / 16000 - SECONDS) < 0.1 and np.abs(audio).max() > 0.001


def test_rerun_reuses_and_plans_are_deterministic(composed, sources, scanned):
    out, _, manifest = composed
    again = compose_dataset(*sources, out, per_class=1, seed=0, max_seconds=SECONDS)
    assert again["encoded"] == 0 and again["reused"] == 21 and again["removed"] == 0
    faces, speech = scanned
    kw = dict(classes=list(EMOTIONS), per_class=3, split="all", config=ComposeConfig())
    a, _ = plan_clips(faces, speech, seed=0, **kw)
    b, _ = plan_clips(faces, speech, seed=0, **kw)
    c, _ = plan_clips(faces, speech, seed=1, **kw)
    assert [p.entry() for p in a] == [p.entry() for p in b]
    assert [p.face.rel for p in a] != [p.face.rel for p in c]
    first = [p.entry() for p in a if p.clip_id.endswith("-0000")]
    assert [{k: v for k, v in e.items() if k in first[0]} for e in manifest["clips"]] == first  # per_class is a prefix


def test_same_plan_encodes_byte_identical_files(scanned, tmp_path):
    faces, speech = scanned
    plan = plan_clips(faces, speech, classes=["sad"], per_class=1, seed=3, split="test", config=ComposeConfig())[0][0]
    cfg = ComposeConfig(max_seconds=0.2)
    compose_clip(plan, tmp_path / "a.mp4", cfg)
    compose_clip(plan, tmp_path / "b.mp4", cfg)
    assert (tmp_path / "a.mp4").read_bytes() == (tmp_path / "b.mp4").read_bytes()


def test_full_plan_uses_each_source_once_and_counts_follow_ravdess(scanned):
    faces, speech = scanned
    plans, limits = plan_clips(faces, speech, classes=list(EMOTIONS), per_class=None, seed=0, split="all",
                               config=ComposeConfig())
    assert len({p.face.path for p in plans}) == len(plans) == len({p.utterance.path for p in plans})
    # RAVDESS speech per actor: 4 neutral, 8 of every other class; calm dropped.
    assert limits["train"]["neutral"]["clips"] == 40 and limits["train"]["angry"]["clips"] == 80
    assert limits["val"]["sad"]["clips"] == 32 and limits["test"]["disgust"]["clips"] == 32
    # FER val holds 56 disgust faces: Test takes 32, Val gets the other 24.
    assert limits["val"]["disgust"] == {"faces": 24, "speech": 32, "clips": 24, "limited_by": "faces"}
    assert all(v["limited_by"] == "speech" for split, per in limits.items() for k, v in per.items()
               if (split, k) != ("val", "disgust"))
    faces_of = {s: {p.face.path for p in plans if p.split == s} for s in ("train", "val", "test")}
    assert not faces_of["val"] & faces_of["test"] and not faces_of["train"] & (faces_of["val"] | faces_of["test"])
    assert {p.face.pool for p in plans if p.split != "train"} == {"heldout"}


def test_reused_speech_gives_a_larger_set_with_fresh_faces_whose_first_pass_is_the_plain_plan(scanned):
    faces, speech = scanned
    plain, _ = plan_clips(faces, speech, classes=list(EMOTIONS), per_class=None, seed=0, split="all",
                          config=ComposeConfig())
    tripled, limits = plan_clips(faces, speech, classes=list(EMOTIONS), per_class=None, seed=0, split="all",
                                 config=ComposeConfig(), reuse_speech=3)
    assert limits["train"]["angry"]["clips"] == 240 and limits["val"]["disgust"]["limited_by"] == "faces"
    assert len({p.face.path for p in tripled}) == len(tripled)  # every clip its own face
    uses = {}
    for p in tripled:
        uses.setdefault(p.utterance.path, set()).add(p.split)
    assert max(map(len, uses.values())) == 1  # a voice stays in its split
    from collections import Counter
    assert max(Counter(p.utterance.path for p in tripled).values()) == 3
    first = {p.clip_id: p for p in tripled}
    # where faces do not run out (FER val has 56 disgust faces), the plain set is a subset
    assert all(first[p.clip_id] == p for p in plain if p.split == "train" or p.label != "disgust")
    with pytest.raises(ValueError, match="reuse_speech"):
        plan_clips(faces, speech, classes=list(EMOTIONS), per_class=None, seed=0, split="all",
                   config=ComposeConfig(), reuse_speech=0)


def test_one_split_mode_pools_every_source(scanned):
    faces, speech = scanned
    plans, _ = plan_clips(faces, speech, classes=list(EMOTIONS), per_class=None, seed=0, split="test",
                          config=ComposeConfig())
    assert {p.split for p in plans} == {"test"} and all(p.rel.startswith("Test/") for p in plans)
    assert len(plans) == 72 + 6 * 144  # all 18 actors' utterances
    disgust = [p for p in plans if p.label == "disgust"]
    assert sum(p.face.pool == "heldout" for p in disgust) == 56  # every held-out face first, then train ones


def _small_sources(tmp_path: Path, sources, *, corrupt: bool = False) -> tuple[Path, Path]:
    """A tiny FER tree and speech folder of links to the shared files (two classes only)."""
    fer, ravdess = sources
    faces, speech = tmp_path / "fer", tmp_path / "speech"
    for split in ("train", "val"):
        for cls in ("happy", "sad"):
            folder = faces / split / cls
            folder.mkdir(parents=True)
            for src in sorted((fer / split / cls).iterdir())[:3]:
                (folder / src.name).symlink_to(src)
    if corrupt:
        for f in (faces / "val" / "sad").iterdir():
            f.unlink()
            f.write_bytes(b"not a jpeg")
    for actor in ("Actor_15", "Actor_16"):
        (speech / actor).mkdir(parents=True)
        for src in sorted((ravdess / actor).iterdir()):
            if src.name.split("-")[2] in ("02", "03", "04"):  # calm, happy, sad
                (speech / actor / src.name).symlink_to(src)
    return faces, speech


def test_bad_face_is_a_problem_not_a_crash_and_classes_intersect(sources, tmp_path):
    faces, speech = _small_sources(tmp_path, sources, corrupt=True)
    summary = compose_dataset(faces, speech, tmp_path / "out", per_class=1, split="test", max_seconds=0.2)
    assert summary["classes"] == ["happy", "sad"]
    assert summary["counts"] == {"test": {"happy": 1}}
    assert len(summary["problems"]) == 1 and "sad" in summary["problems"][0]["clip_id"]
    assert "not a readable image" in summary["problems"][0]["reason"]
    assert summary["dropped_classes"]["calm"].startswith("RAVDESS 'calm'")


def test_refuses_a_foreign_folder_and_removes_stale_clips(sources, tmp_path):
    faces, speech = _small_sources(tmp_path, sources)
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "keep.txt").write_text("someone's data")
    with pytest.raises(FileExistsError):
        compose_dataset(faces, speech, foreign, per_class=1, split="test", max_seconds=0.2)
    assert [p.name for p in foreign.iterdir()] == ["keep.txt"]
    out = tmp_path / "out"
    first = compose_dataset(faces, speech, out, per_class=1, split="test", seed=0, max_seconds=0.2)
    leftover = out / "Test" / "Happy" / ".tmp-composed-s0-test-happy-0000.mp4-x1y2"  # as a killed run leaves
    leftover.write_bytes(b"half a video")
    second = compose_dataset(faces, speech, out, per_class=1, split="test", seed=1, max_seconds=0.2, workers=2)
    assert first["encoded"] == second["encoded"] == 2 and second["removed"] == 2
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.mp4"))
    assert files == sorted(c["path"] for c in json.loads((out / "compose.json").read_text())["clips"])
    assert all("-s1-" in f for f in files) and not leftover.exists()


def test_compose_command(sources, tmp_path):
    from cli.compose_cmd import compose

    faces, speech = _small_sources(tmp_path, sources)
    app = typer.Typer()
    app.command()(compose)
    runner = CliRunner()
    out = tmp_path / "out"
    result = runner.invoke(app, ["--faces", str(faces), "--speech", str(speech), "--out", str(out),
                                 "--per-class", "1", "--split", "val", "--max-seconds", "0.2", "--seed", "2"])
    assert result.exit_code == 0, result.output
    last = json.loads(result.output.strip().splitlines()[-1])
    assert last["clips"] == 2 and last["counts"] == {"val": {"happy": 1, "sad": 1}}
    assert sorted(p.parent.name for p in (out / "Val").glob("*/*.mp4")) == ["Happy", "Sad"]
    bad = runner.invoke(app, ["--faces", str(faces), "--speech", str(speech), "--out", str(out), "--split", "dev"])
    assert bad.exit_code != 0
    missing = runner.invoke(app, ["--faces", str(tmp_path / "nope"), "--speech", str(speech), "--out", str(out)])
    assert missing.exit_code == 2 and "faces root" in missing.output
