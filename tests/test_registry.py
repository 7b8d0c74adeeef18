"""The registry is the one place a stage's and a specialist's facts live: a toy stage and a toy
specialist registered in tests/toy_plugin.py alone run through extract → train → fuse → predict,
the children and the `emonets` command picking them up through ``EMONETS_PLUGINS``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from data_catalog import Store
from emonets import registry
from emonets.datasets.demo.dataset import make_demo_dataset
from emonets.features.local import extract_clips
from emonets.ingest_store import ingest_into_store

TESTS = Path(__file__).resolve().parent


@pytest.fixture
def toy(monkeypatch):
    monkeypatch.syspath_prepend(str(TESTS))
    monkeypatch.setenv("EMONETS_PLUGINS", "toy_plugin")  # the guarded children import it too
    sys.modules.pop("toy_plugin", None)
    import toy_plugin  # noqa: F401  (registers the stage and the specialist)

    yield
    registry.unregister("brightness_nc")
    registry.unregister("brightness")
    sys.modules.pop("toy_plugin", None)


def test_built_in_entries_and_their_derived_facts():
    assert registry.stages() == ("faces", "mouths", "mfcc", "motion")
    assert registry.specialists() == ("face_cnn", "audio", "bag_of_mouths", "motion")
    assert registry.stages_for(["bag_of_mouths"]) == ["faces", "mouths"]
    assert registry.stage_chains(["motion", "mouths", "faces", "mfcc"]) == [["faces", "mouths"], ["mfcc"], ["motion"]]
    assert registry.stage_chains(["mouths"]) == [["mouths"]]  # its faces are read from the store
    assert registry.specialist("motion").table == "motion_blocks"
    with pytest.raises(ValueError, match="did you mean 'audio'"):
        registry.specialist("audoi")
    with pytest.raises(ValueError, match="upstream stage 'nothing'"):
        registry.register_stage(registry.StageSpec(name="x", table="x", needs="video", order="frame", config="a:b",
                                                   run="a:b", decode="a:b", upstream="nothing"))
    assert "x" not in registry.stages()


def test_a_toy_stage_and_specialist_run_extract_train_fuse_predict(toy, tmp_path):
    from tasks.fuse import run_fusion
    from tasks.train import run_training

    assert "brightness" in registry.stages() and registry.stages_for(["brightness_nc"]) == ["brightness"]
    data = make_demo_dataset(tmp_path / "data", per_class=1, seconds=1.0)["root"]
    store = Store(tmp_path / "store")
    ingested = ingest_into_store(str(data), str(store.root))
    clips = store.read("clips", partitions=[ingested["partition"]])

    summary = extract_clips(store, clips, registry.stages_for(["brightness_nc"]))  # in guarded children
    assert summary["computed"] == len(clips) and summary["failed"] == 0
    rows = store.read("brightness")
    assert set(rows["clip_id"]) == set(clips["clip_id"]) and (rows["level"] > 0).all()
    again = extract_clips(store, clips, ["brightness"])
    assert again["computed"] == 0 and again["cached"] == len(clips)  # the one freshness test holds for it

    trained = run_training("brightness_nc", str(store.root), clip_partitions=[ingested["partition"]])
    assert trained["status"] == "trained" and trained["scored"] == len(clips)
    assert run_training("brightness_nc", str(store.root), clip_partitions=[ingested["partition"]])["status"] == "reused"
    fused = run_fusion(str(store.root), ["brightness_nc"], [ingested["partition"]], n_draws=200)
    assert fused["status"] == "fitted"

    video = next(Path(data, "Test").rglob("*.mp4"))
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    env["PYTHONPATH"] = os.pathsep.join([str(TESTS), env.get("PYTHONPATH", "")])
    done = subprocess.run([str(Path(sys.executable).with_name("emonets")), "predict", str(video), "--model",
                           fused["bundle"], "--store", str(tmp_path / "work"), "--json"],
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert list(result["specialists"]) == ["brightness_nc"] and result["label"] in result["probabilities"]
    assert sum(result["probabilities"].values()) == pytest.approx(1.0, abs=1e-3)


def test_a_plugin_that_cannot_be_imported_is_one_line_and_commands_still_start(tmp_path):
    """A bad $EMONETS_PLUGINS costs the commands that read the registry one `error:` line (no
    traceback), and `--version` / `--help` do not read it at all."""
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    env["EMONETS_PLUGINS"] = "no_such_plugin_here"
    exe = str(Path(sys.executable).with_name("emonets"))
    version = subprocess.run([exe, "--version"], env=env, capture_output=True, text=True, timeout=120)
    assert version.returncode == 0 and version.stdout.startswith("emonets ")
    run = subprocess.run([exe, "extract", "--store", str(tmp_path / "s")], env=env, capture_output=True,
                         text=True, timeout=120)
    assert run.returncode == 2 and "Traceback" not in run.stderr + run.stdout
    assert "EMONETS_PLUGINS: cannot import 'no_such_plugin_here'" in run.stderr + run.stdout
