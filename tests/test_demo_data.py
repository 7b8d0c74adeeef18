"""The synthetic demo dataset: AFEW layout, determinism, decodable clips, detectable faces,
and audio whose energy and pitch really differ by class."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from emonets.datasets.demo.dataset import DemoConfig, make_demo_dataset, render_clip, synth_voice
from emonets.labels import EMOTIONS

SMALL = dict(per_class=1, seconds=1.0, fps=8, seed=3)


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo")
    return root, make_demo_dataset(root, **SMALL)


def _clips(root):
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*.mp4"))


def test_afew_layout_and_counts(demo):
    root, summary = demo
    clips = _clips(root)
    counts = DemoConfig(per_class=1).split_counts()
    assert len(clips) == summary["clips"] == 7 * sum(counts.values())
    for split, n in counts.items():
        for emotion in EMOTIONS:
            here = list((root / split / emotion.capitalize()).glob("*.mp4"))
            assert len(here) == n, (split, emotion)
    assert len({p.rsplit("/", 1)[1] for p in clips}) == len(clips)  # clip ids (stems) are unique
    assert "SYNTHETIC" in (root / "README.txt").read_text()
    assert json.loads((root / "demo.json").read_text())["config"]["seed"] == SMALL["seed"]
    assert summary["by_label"] == {e: sum(counts.values()) for e in EMOTIONS}


def test_ingest_reads_it_as_afew(demo):
    from emonets.datasets import ingest

    root, summary = demo
    result = ingest(root)
    assert result.format == "afew"
    assert len(result.clips) == summary["clips"]
    assert set(result.clips["label"]) == set(EMOTIONS)
    assert result.problems.empty


def test_rendering_is_deterministic_and_seed_dependent():
    cfg = DemoConfig(seconds=0.5, fps=8)

    def clip(seed):
        frames, audio = render_clip("happy", np.random.default_rng(seed), cfg, identity=1)
        return np.stack(list(frames)), audio

    (f1, a1), (f2, a2), (f3, a3) = clip(7), clip(7), clip(8)
    assert np.array_equal(f1, f2) and np.array_equal(a1, a2)
    assert not np.array_equal(f1, f3) and not np.array_equal(a1, a3)
    assert f1.shape == (4, cfg.height, cfg.width, 3) and f1.dtype == np.uint8
    assert a1.shape == (int(cfg.seconds * cfg.sr),) and a1.dtype == np.float32


def test_same_seed_writes_identical_files(demo, tmp_path):
    root, _ = demo
    again = tmp_path / "again"
    make_demo_dataset(again, **SMALL)

    def digests(base):
        return {rel: hashlib.sha256((base / rel).read_bytes()).hexdigest() for rel in _clips(base)}

    # One x264 thread is not enough: its mb-tree rate control also varies run to run here, so
    # write_video(deterministic=True) needs x264-params "mbtree=0" as well.
    assert digests(root) == digests(again), "same seed wrote different bytes (see the comment above)"


def test_existing_tree_is_reused_unless_forced(demo, tmp_path):
    root, _ = demo
    first = next(root.rglob("*.mp4"))
    mtime = first.stat().st_mtime_ns
    again = make_demo_dataset(root, **SMALL)
    assert again["reused"] and first.stat().st_mtime_ns == mtime
    other = make_demo_dataset(tmp_path / "other", **{**SMALL, "per_class": 2, "seconds": 0.25})
    assert not other["reused"] and other["clips"] == 7 * 4


def test_bad_settings_are_refused(tmp_path):
    with pytest.raises(ValueError, match="per_class"):
        make_demo_dataset(tmp_path / "x", per_class=0)


def test_clips_have_both_streams(demo):
    from emonets.media.video import probe

    root, _ = demo
    for rel in _clips(root)[:: 5]:
        info = probe(root / rel)
        assert info.has_video and info.has_audio
        assert (info.width, info.height) == (320, 240)
        assert info.duration == pytest.approx(SMALL["seconds"], abs=0.2)


def test_a_face_is_found_in_every_class(demo):
    import face_recognition

    from emonets.media.video import iter_frames

    root, _ = demo
    for emotion in EMOTIONS:
        path = next((root / "Train" / emotion.capitalize()).glob("*.mp4"))
        last = list(iter_frames(path))[-1].image  # the expression at its apex
        boxes = face_recognition.face_locations(last)
        assert len(boxes) == 1, (emotion, boxes)
        top, right, bottom, left = boxes[0]
        assert 70 < right - left < 200


def _audio_features(path):
    import librosa

    from emonets.media.audio_io import load_audio

    y = load_audio(path, sr=16000)
    rms = librosa.feature.rms(y=y, frame_length=512, hop_length=256)[0]
    f0, voiced, _ = librosa.pyin(y, fmin=70, fmax=600, sr=16000, frame_length=1024, hop_length=256)
    return float(np.sqrt(np.mean(rms[rms > 0.5 * rms.max()] ** 2))), float(np.nanmedian(f0[voiced]))


def test_audio_energy_and_pitch_differ_by_class(demo):
    root, _ = demo
    feats = {e: np.array([_audio_features(p) for p in root.glob(f"*/{e.capitalize()}/*.mp4")]) for e in EMOTIONS}
    energy = {e: np.median(v[:, 0]) for e, v in feats.items()}
    pitch = {e: np.median(v[:, 1]) for e, v in feats.items()}
    # The designed order: loud angry vs quiet sad; high surprise/fear vs low sad/disgust.
    assert energy["angry"] > 2.5 * energy["sad"]
    assert energy["happy"] > energy["neutral"]
    assert pitch["surprise"] > 1.5 * pitch["sad"]
    assert pitch["fear"] > pitch["neutral"] > pitch["sad"]


def test_syllable_rate_differs_by_class():
    rng = np.random.default_rng(0)
    counts = {e: np.mean([len(synth_voice(e, rng, seconds=4.0)[1]) for _ in range(5)]) for e in ("fear", "sad")}
    assert counts["fear"] > 1.5 * counts["sad"]
