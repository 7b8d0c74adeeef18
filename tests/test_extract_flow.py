"""The extract-features flow: incremental by content, per-stage config, bad input, crash safety.

Each test counts what actually ran (the flow's computed / cached counts and the partitions'
manifests), never wall time.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from flows.extract_features import run_extract_features
from tasks.ingest import ingest_root

FAST = ["mfcc", "motion"]


def _dataset(tmp_path, make_clip, n=3):
    root = tmp_path / "data"
    for i in range(n):
        make_clip(f"clip{i}.mp4", folder=root / "Train" / "Happy", seconds=1.0 + 0.2 * i)
    return root


def _ingest(root, store):
    return ingest_root.fn(str(root), str(store.root), "auto")


def test_rerun_recomputes_nothing_then_only_the_changed_clip(prefect_api, tmp_path, make_clip, store):
    root = _dataset(tmp_path, make_clip)
    _ingest(root, store)
    first = run_extract_features(str(store.root), stages=FAST, runner="threads")
    assert (first["computed"], first["cached"], first["failed"]) == (6, 0, 0)

    again = run_extract_features(str(store.root), stages=FAST, runner="threads")
    assert (again["computed"], again["cached"]) == (0, 6)

    make_clip("clip3.mp4", folder=root / "Train" / "Happy", seconds=1.0)      # one clip added
    make_clip("clip0.mp4", folder=root / "Train" / "Happy", seconds=1.6)      # one clip's bytes changed
    _ingest(root, store)
    before = {k: store.manifest("mfcc", k).created for k in ("clip1", "clip2")}
    third = run_extract_features(str(store.root), stages=FAST, runner="threads")
    assert (third["computed"], third["cached"]) == (4, 4)
    assert {k: store.manifest("mfcc", k).created for k in ("clip1", "clip2")} == before


def test_changing_one_stage_config_reruns_only_that_stage(prefect_api, tmp_path, make_clip, store):
    _ingest(_dataset(tmp_path, make_clip, n=2), store)
    run_extract_features(str(store.root), stages=FAST, runner="threads")
    changed = run_extract_features(str(store.root), stages=FAST, runner="threads",
                                   configs={"mfcc": {"n_mfcc": 13}})
    assert changed["by_stage"] == {"mfcc": {"computed": 2, "cached": 0}, "motion": {"computed": 0, "cached": 2}}
    assert store.manifest("mfcc", "clip0").config["n_mfcc"] == 13


def test_process_pool_runner_and_per_clip_problems(prefect_api, tmp_path, make_clip, store):
    root = tmp_path / "data"
    make_clip("good.mp4", folder=root / "Train" / "Sad", seconds=1.0)
    make_clip("mute.mp4", folder=root / "Train" / "Sad", seconds=1.0, audio=False)
    make_clip("short.mp4", folder=root / "Train" / "Sad", seconds=0.2)  # fewer frames than a block
    _ingest(root, store)
    summary = run_extract_features(str(store.root), stages=FAST, runner="local")
    assert summary["failed"] == 0
    problems = store.read("problems")
    by_clip = {(r.clip_id, r.stage): r.reason for r in problems.itertuples()}
    assert "no audio stream" in by_clip[("mute", "ingest")]
    assert ("mute", "mfcc") not in by_clip  # the audio stage never ran on it
    assert ("short", "motion") in by_clip
    assert store.manifest("mfcc", "good").rows > 0 and store.manifest("motion_blocks", "good").rows > 0


def test_unknown_stage_is_a_clear_error(prefect_api, store):
    with pytest.raises(ValueError, match="unknown stage 'colour'"):
        run_extract_features(str(store.root), stages=["colour"], runner="threads")


CRASHER = """
import sys, time
from data_catalog import Store
from emonets.features.extraction import work_units, default_config
from tasks.extract import extract_unit
store = Store(sys.argv[1])
for unit in work_units(store.read("clips")):
    extract_unit.fn(unit.to_dict(), ["motion"], {"motion": default_config("motion").to_dict()}, str(store.root))
    print("done", unit.key, flush=True)
    time.sleep(0.5)
"""


def test_killed_run_loses_nothing_finished_and_leaves_no_half_partition(tmp_path, make_clip, store):
    _ingest(_dataset(tmp_path, make_clip, n=4), store)
    proc = subprocess.Popen([sys.executable, "-c", CRASHER, str(store.root)], stdout=subprocess.PIPE,
                            text=True, env={**os.environ})
    first = proc.stdout.readline()
    assert first.startswith("done")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = store.partitions("motion_blocks")
    assert 1 <= len(done) < 4
    for key in done:  # every visible partition is complete and readable
        assert len(store.read("motion_blocks", partitions=[key])) == store.manifest("motion_blocks", key).rows
    from emonets.features.extraction import default_config, work_units
    from tasks.extract import extract_unit

    motion = {"motion": default_config("motion").to_dict()}
    statuses = [extract_unit.fn(u.to_dict(), ["motion"], motion, str(store.root))[0]["status"]
                for u in work_units(store.read("clips"))]
    assert statuses.count("reused") == len(done) and statuses.count("computed") == 4 - len(done)


def test_dask_runner_local_cluster_and_unreachable_address(prefect_api, tmp_path, make_clip, store):
    from flows.runtime.runners import RunnerUnavailableError

    _ingest(_dataset(tmp_path, make_clip, n=2), store)
    summary = run_extract_features(str(store.root), stages=["mfcc"], runner="dask")
    assert (summary["computed"], summary["failed"]) == (2, 0)
    with pytest.raises(RunnerUnavailableError, match="cannot reach a Dask scheduler"):
        run_extract_features(str(store.root), stages=["mfcc"], runner="dask", dask_address="tcp://127.0.0.1:1")


def test_a_single_stale_unit_runs_in_the_flow_process_not_a_new_pool(prefect_api, tmp_path, make_clip, store,
                                                                      monkeypatch):
    """One added clip is computed without starting a pool worker (seconds of interpreter start-up
    for no parallelism); a crash there is still a `problems` row, and two stale units use the pool."""
    from prefect.task_runners import ProcessPoolTaskRunner

    root = _dataset(tmp_path, make_clip, n=2)
    _ingest(root, store)
    submitted = []
    real_submit = ProcessPoolTaskRunner.submit

    def counting_submit(self, task, *args, **kwargs):
        submitted.append(task.name)
        return real_submit(self, task, *args, **kwargs)

    monkeypatch.setattr(ProcessPoolTaskRunner, "submit", counting_submit)
    first = run_extract_features(str(store.root), stages=FAST, runner="local")
    assert (first["computed"], first["failed"]) == (4, 0) and submitted == ["extract", "extract"]

    make_clip("clip2.mp4", folder=root / "Train" / "Happy", seconds=1.5)  # other bytes than clip0's
    _ingest(root, store)
    monkeypatch.setenv("EMONETS_TEST_CRASH", "mfcc:clip2:SIGSEGV")
    second = run_extract_features(str(store.root), stages=FAST, runner="local")
    assert submitted == ["extract", "extract"]  # nothing more went to the pool
    assert (second["computed"], second["cached"], second["failed"]) == (1, 4, 1), second["errors"]
    problems = store.read("problems")
    assert list(problems[(problems["clip_id"] == "clip2") & (problems["stage"] == "mfcc")]["reason"]) == [
        "worker crashed: SIGSEGV"]
    assert store.manifest("motion_blocks", "clip2").rows > 0
