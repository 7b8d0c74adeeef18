"""`emonets predict` / `evaluate` on the fast path: the library in this process, no Prefect.

The model is a real audio specialist (a FrameMLP with seeded random weights, sized to the MFCC
table the pipeline writes), saved as a bundle; the videos are generated here. The CLI runs as a
user runs it (a subprocess, no Prefect API configured).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from data_catalog import Store
from emonets.features.local import extract_clips
from emonets.features.extraction import default_config, run_mfcc, work_units
from emonets.ingest_store import ingest_into_store
from emonets.prediction_run import evaluate_root, predict_videos, request_manifest
from emonets.specialists.audio.model import AudioConfig, AudioSpecialist
from emonets.specialists.audio.net import FrameMLP
from emonets.media.video_list import expand_videos
from cli.main import app
from flows.runtime.runners import interactive_runner, prefect_api_configured

REPO = Path(__file__).resolve().parents[1]


def _mfcc_width(video: Path) -> int:
    """Columns of the mfcc table the pipeline writes for a clip (what the audio model reads)."""
    probe = video.parent.parent / "_probe"
    result = ingest_into_store(str(video.parent), str(probe), "videos")
    clips = Store(probe).read("clips", partitions=[result["partition"]])
    table = run_mfcc(work_units(clips)[0], default_config("mfcc")).table
    return len(table["coeffs"].iloc[0])


def audio_bundle(path: Path, n_features: int, seed: int = 0) -> Path:
    """A real AudioSpecialist bundle with seeded random weights (no training)."""
    cfg = AudioConfig(hidden=(16,), context=1, dilation=1, stride=2, dropout=0.0, input_dropout=0.0, seeds=(0,))
    torch.manual_seed(seed)
    net = FrameMLP(n_features, 7, hidden=cfg.hidden, context=cfg.context, dilation=cfg.dilation,
                   stride=cfg.stride, dropout=0.0, input_dropout=0.0)
    model = AudioSpecialist(cfg)
    model.n_features_ = n_features
    model.mean_, model.std_ = np.zeros(n_features, np.float32), np.ones(n_features, np.float32)
    model.states_ = [{k: v.clone() for k, v in net.state_dict().items()}]
    model.metrics_, model.history_ = {}, []
    model.save(path)
    return path


def _video(path: Path, n: int) -> Path:
    """A 1-s clip whose picture and tone differ with ``n`` (so each has its own content hash)."""
    from emonets.media.writer import write_video

    yy, xx = np.mgrid[0:48, 0:64]
    frames = (np.stack([(xx + 3 * j + n) % 256, (yy + 7 * n) % 256, np.full_like(xx, 20 * n)], -1).astype(np.uint8)
              for j in range(25))
    sr = 16000
    tone = (0.3 * np.sin(2 * np.pi * (180 + 60 * n) * np.arange(sr) / sr)).astype(np.float32)
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_video(path, frames, fps=25, audio=tone, sr=sr)


@pytest.fixture
def videos(tmp_path):
    return [_video(tmp_path / "videos" / f"v{i}.mp4", i) for i in range(3)]


@pytest.fixture
def model(videos, tmp_path):
    return audio_bundle(tmp_path / "audio-model", _mfcc_width(videos[0]))


def _user_env() -> dict[str, str]:
    """The environment of a user's shell: no Prefect API configured."""
    return {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}


# What a run imported, printed as it exits (the CLI as the `emonets` script runs it: its
# main() may leave through os._exit, which skips atexit, so that is where it is reported).
_RUN = ("import atexit, json, os, sys\n"
        "def report():\n"
        "    print('IMPORTED ' + json.dumps({m: m in sys.modules for m in ('prefect', 'lightning')}),"
        " file=sys.stderr, flush=True)\n"
        "atexit.register(report)\n"
        "leave = os._exit\n"
        "os._exit = lambda code: (report(), leave(code))\n"
        "from cli.main import main\nsys.argv[0] = 'emonets'\nmain()\n")


def test_predict_runs_in_this_process_without_prefect_and_reuses_its_results(videos, model, tmp_path):
    store = tmp_path / "store"
    cmd = [sys.executable, "-c", _RUN, "predict", str(videos[0]), "--model", str(model), "--store", str(store),
           "--json"]
    first = subprocess.run(cmd, cwd=REPO, env=_user_env(), capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr[-3000:]
    record = json.loads(first.stdout.strip().splitlines()[-1])
    assert record["label"] in record["probabilities"] and record["specialists"]["audio"]["label"] == record["label"]
    imported = json.loads(first.stderr.split("IMPORTED ")[-1].splitlines()[0])
    assert imported == {"prefect": False, "lightning": False}, first.stderr[-2000:]
    cached = list(Store(store).path("_predict", "_results").rglob("*.json"))
    assert len(cached) == 1

    again = subprocess.run(cmd, cwd=REPO, env=_user_env(), capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-3000:]
    assert json.loads(again.stdout.strip().splitlines()[-1]) == record


def test_a_rerun_extracts_and_predicts_only_new_videos(videos, model, tmp_path):
    work = Store(tmp_path / "work")
    first = predict_videos([str(videos[0])], str(model), work)
    assert first.ingested["extraction"]["computed"] == 1 and first.ingested["reused_results"] == 0
    second = predict_videos([str(videos[0]), str(videos[1])], str(model), work)
    assert second.ingested["reused_results"] == 1
    assert second.ingested["extraction"]["computed"] == 1 and second.ingested["extraction"]["clips"] == 1
    by_path = {r["path"]: r for r in second.results}
    assert by_path[str(videos[0])]["probabilities"] == first.results[0]["probabilities"]
    assert by_path[str(videos[1])]["label"]

    # Another model (a bundle written again: new bundle.json) never reads the first one's results.
    other = audio_bundle(tmp_path / "other-model", len(work.read("mfcc")["coeffs"].iloc[0]), seed=1)
    third = predict_videos([str(videos[0])], str(other), work)
    assert third.ingested["reused_results"] == 0 and third.ingested["extraction"]["cached"] == 1
    assert third.results[0]["probabilities"] != first.results[0]["probabilities"]


def test_a_crashed_unit_is_a_record_and_the_other_videos_are_labelled(videos, model, tmp_path, monkeypatch):
    work = Store(tmp_path / "work")
    manifest = request_manifest(work, [str(v) for v in videos[:2]])
    clips = work.read("clips", partitions=[ingest_into_store(str(manifest), str(work.root), "csv",
                                                             allow_outside=True, keep_copies=True)["partition"]])
    doomed = clips["clip_id"].iloc[0]
    monkeypatch.setenv("EMONETS_TEST_CRASH", f"mfcc:{doomed}:SIGSEGV")
    summary = extract_clips(work, clips, ["mfcc"])
    assert summary["failed"] == 1 and summary["computed"] == 1
    assert "worker crashed: SIGSEGV" in summary["errors"][0]
    problems = work.read("problems")
    assert (problems["clip_id"] == doomed).any()

    run = predict_videos([str(v) for v in videos[:2]], str(model), work)  # still crashing: a record, not a stop
    labels = {r["clip_id"]: r["label"] for r in run.results}
    assert labels[doomed] is None and all(v for k, v in labels.items() if k != doomed)
    record = next(r for r in run.results if r["clip_id"] == doomed)
    assert "mfcc: worker crashed: SIGSEGV" in record["error"]


def test_evaluate_reports_the_model_and_each_specialist(model, tmp_path):
    root = tmp_path / "labelled"
    for n, (split, label) in enumerate((s, lab) for s in ("Train", "Val") for lab in ("Happy", "Sad")):
        _video(root / split / label / f"{split}_{label}.mp4", 10 + n)
    work = Store(tmp_path / "eval")
    result = evaluate_root(str(model), str(root), "auto", work)
    assert result["n"] == 4 and set(result["specialists"]) == {"audio"}
    assert result["specialists"]["audio"]["n"] == 4
    assert result["specialists"]["audio"]["accuracy"] == result["accuracy"]
    assert len(result["confusion"]) == 7
    only_val = evaluate_root(str(model), str(root), "auto", work, split="val")
    assert only_val["n"] == 2 and only_val["specialists"]["audio"]["n"] == 2


def test_folders_and_csv_lists_expand_to_each_video_once(tmp_path):
    folder = tmp_path / "batch"
    (folder / "sub").mkdir(parents=True)
    for name in ("b.mp4", "a.MOV", "sub/c.flv", "notes.txt"):
        (folder / name).write_bytes(b"x")
    listing = tmp_path / "list.csv"
    listing.write_text("path\nbatch/a.MOV\n/nowhere/missing.mp4\n\n")
    out = expand_videos([folder, listing, folder / "b.mp4"])
    assert out == [folder / "a.MOV", folder / "b.mp4", folder / "sub" / "c.flv", Path("/nowhere/missing.mp4")]
    (folder / "empty").mkdir()
    (folder / "sub" / "back").symlink_to("..", target_is_directory=True)  # a link into its own parent
    assert expand_videos([folder / "empty", folder / "sub" / "back"]) == [folder / "empty", folder / "sub" / "back"]


def test_a_configured_prefect_api_sends_interactive_commands_through_flows(tmp_path, monkeypatch):
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    monkeypatch.delenv("PREFECT_PROFILE", raising=False)
    monkeypatch.setenv("PREFECT_HOME", str(tmp_path))
    monkeypatch.delenv("PREFECT_PROFILES_PATH", raising=False)
    assert not prefect_api_configured() and interactive_runner("auto") == "inline"
    (tmp_path / "profiles.toml").write_text('active = "team"\n[profiles.team]\n'
                                            'PREFECT_API_URL = "http://127.0.0.1:4200/api"\n')
    assert prefect_api_configured() and interactive_runner("auto") == "threads"
    monkeypatch.setenv("PREFECT_PROFILE", "ephemeral")
    assert not prefect_api_configured()
    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:4200/api")
    assert prefect_api_configured() and interactive_runner("inline") == "inline"


def test_version_and_help_in_plain_words():
    runner = CliRunner()
    version = runner.invoke(app, ["--version"])
    from emonets import __version__

    assert version.exit_code == 0 and version.output.strip() == f"emonets {__version__}"
    for command in ("predict", "evaluate", "train", "train-all", "ingest"):
        shown = runner.invoke(app, [command, "--help"]).output
        assert not any(t in shown for t in ("<list[", "<path>", "<str>", "<bool>", "<int>")), shown
        assert "{" not in shown.split("\n")[0], shown
    assert "VIDEOS..." in runner.invoke(app, ["predict", "--help"]).output


def test_ingest_says_which_splits_are_empty_and_what_that_means(tmp_path):
    root = tmp_path / "only-train"
    for n, label in enumerate(("Happy", "Sad")):
        _video(root / "Train" / label / f"{label}.mp4", 20 + n)
    result = CliRunner().invoke(app, ["ingest", str(root), "--store", str(tmp_path / "s")])
    assert result.exit_code == 0, result.output
    note = next(line for line in result.output.splitlines() if line.startswith("note: no clips in"))
    assert "val and test" in note and "the fusion would fit on train" in note and "no test figures" in note


@pytest.mark.slow
def test_a_batch_through_the_flow_gives_the_inline_results(prefect_api, videos, model, tmp_path):
    runner = CliRunner()
    base = ["predict", str(videos[0].parent), "--model", str(model), "--json"]
    inline = runner.invoke(app, [*base, "--store", str(tmp_path / "a"), "--runner", "inline"])
    flow = runner.invoke(app, [*base, "--store", str(tmp_path / "b"), "--runner", "threads",
                               "--out", str(tmp_path / "b.parquet")])
    assert inline.exit_code == 0 and flow.exit_code == 0, (inline.output, flow.output)

    def records(output: str) -> dict:
        rows = [json.loads(line) for line in output.strip().splitlines() if line.startswith("{")]
        return {Path(r["path"]).name: r["probabilities"] for r in rows}

    assert records(inline.output) == records(flow.output) and len(records(flow.output)) == 3
    import pandas as pd

    table = pd.read_parquet(tmp_path / "b.parquet")
    assert sorted(Path(p).name for p in table["path"]) == ["v0.mp4", "v1.mp4", "v2.mp4"]
    assert table["label"].notna().all() and "audio_label" in table.columns


def test_a_video_named_through_a_link_is_reported_under_that_name(videos, model, tmp_path):
    link = tmp_path / "my-name.mp4"
    link.symlink_to(videos[2])
    shown = CliRunner().invoke(app, ["predict", str(link), "--model", str(model), "--store", str(tmp_path / "s"),
                                     "--json"])
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.output.strip().splitlines()[-1])["path"] == str(link)


def test_with_no_model_anywhere_predict_uses_the_shipped_one(shared, tmp_path):
    """A fresh install: no store, no --model: the shipped fused model labels a real talking face."""
    video = shared("talking-faces", "video-retalking_face_3.mp4")
    done = subprocess.run([sys.executable, "-c", _RUN, "predict", str(video), "--store", str(tmp_path / "new"),
                           "--json"], cwd=REPO, env=_user_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "using the shipped fused model" in done.stderr
    record = json.loads(done.stdout.strip().splitlines()[-1])
    from emonets.release import shipped

    names = json.loads((shipped("fused") / "bundle.json").read_text())["config"]["specialists"]
    assert record["label"] in record["probabilities"] and set(record["specialists"]) == set(names)
