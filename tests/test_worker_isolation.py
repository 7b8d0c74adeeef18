"""A unit whose worker dies (signal, os._exit, kill) costs that unit only, on every runner.

The crashes are real: the guarded child kills itself with the signal, as a native fault in
dlib, PyAV or numba would, through the test-only EMONETS_TEST_CRASH setting.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from emonets.workers.isolation import GuardedRunner, WorkerCrashed, describe_exit
from flows.extract_features import run_extract_features
from tasks.ingest import ingest_root


def double(x):
    return 2 * x


def fail(message):
    raise KeyError(message)


def die(how):
    if how == "exit":
        os._exit(3)
    os.kill(os.getpid(), getattr(signal, how))


def die_unless_marked(marker):
    if not os.path.exists(marker):
        open(marker, "w").close()
        os.kill(os.getpid(), signal.SIGSEGV)
    return os.getpid()


def test_guarded_call_returns_values_and_raises_the_childs_exception():
    runner = GuardedRunner()
    try:
        assert runner.call(double, 21) == 42
        with pytest.raises(KeyError, match="nope"):
            runner.call(fail, "nope")
        assert runner.call(double, 2) == 4  # the child survived the exception and is reused
    finally:
        runner.close()


@pytest.mark.parametrize("how, reason", [("SIGSEGV", "worker crashed: SIGSEGV"),
                                         ("SIGKILL", "worker crashed: SIGKILL"),
                                         ("exit", "worker exited with code 3")])
def test_a_child_that_dies_twice_is_reported_with_its_signal(how, reason):
    runner = GuardedRunner()
    try:
        with pytest.raises(WorkerCrashed, match=reason):
            runner.call(die, how)
        assert runner.call(double, 5) == 10  # a fresh child takes the next call
    finally:
        runner.close()


def test_a_crash_is_retried_once_in_a_fresh_process(tmp_path):
    runner = GuardedRunner()
    try:
        first_child = runner.call(os.getpid)
        pid = runner.call(die_unless_marked, str(tmp_path / "crashed-once"))
        assert pid != first_child
    finally:
        runner.close()


def test_a_hung_call_is_stopped_at_its_time_limit():
    runner = GuardedRunner(retries=0)
    try:
        with pytest.raises(WorkerCrashed, match="timed out after 1 s"):
            runner.call(time.sleep, 30, timeout=1)
    finally:
        runner.close()


def test_describe_exit_names_signals_and_codes():
    assert describe_exit(-11) == "worker crashed: SIGSEGV"
    assert describe_exit(2) == "worker exited with code 2"


ORPHAN = """
import sys, time
from emonets.workers.isolation import GuardedRunner
runner = GuardedRunner()
print(runner.call(__import__("os").getpid), flush=True)
time.sleep(60)
"""


def test_the_guarded_child_dies_with_its_parent():
    parent = subprocess.Popen([sys.executable, "-c", ORPHAN], stdout=subprocess.PIPE, text=True)
    child = int(parent.stdout.readline())
    parent.kill()
    parent.wait()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and _alive(child):
        time.sleep(0.05)
    assert not _alive(child)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(") ")[1][0] != "Z"
    except FileNotFoundError:
        return False


def _three_clips(tmp_path, make_clip, store):
    root = tmp_path / "data"
    for i in range(3):
        make_clip(f"clip{i}.mp4", folder=root / "Train" / "Happy", seconds=1.0 + 0.1 * i)
    ingest_root.fn(str(root), str(store.root), "auto")


@pytest.mark.parametrize("runner", ["local", "threads", "dask"])
def test_a_crashing_unit_is_a_problem_row_and_the_run_goes_on(prefect_api, tmp_path, make_clip, store,
                                                               monkeypatch, runner):
    _three_clips(tmp_path, make_clip, store)
    monkeypatch.setenv("EMONETS_TEST_CRASH", "mfcc:clip1:SIGSEGV")
    summary = run_extract_features(str(store.root), stages=["mfcc", "motion"], runner=runner)
    assert summary["failed"] == 1 and summary["computed"] == 5, summary["errors"]
    assert any("clip1" in e and "SIGSEGV" in e for e in summary["errors"])
    problems = store.read("problems")
    crashed = problems[(problems["clip_id"] == "clip1") & (problems["stage"] == "mfcc")]
    assert list(crashed["reason"]) == ["worker crashed: SIGSEGV"]
    assert "clip1" not in store.partitions("mfcc")  # nothing written for it: the next run retries
    assert {"clip0", "clip2"} <= set(store.partitions("mfcc")) and len(store.partitions("motion_blocks")) == 3

    monkeypatch.delenv("EMONETS_TEST_CRASH")
    again = run_extract_features(str(store.root), stages=["mfcc", "motion"], runner="threads")
    assert (again["computed"], again["cached"], again["failed"]) == (1, 5, 0), again["errors"]
    problems = store.read("problems")
    assert problems[(problems["clip_id"] == "clip1") & (problems["stage"] == "mfcc")].empty


def test_a_unit_that_crashes_once_succeeds_on_its_retry(prefect_api, tmp_path, make_clip, store, monkeypatch):
    _three_clips(tmp_path, make_clip, store)
    monkeypatch.setenv("EMONETS_TEST_CRASH", "mfcc:clip2:SIGKILL:1")
    monkeypatch.setenv("EMONETS_TEST_CRASH_DIR", str(tmp_path / "crash-counter"))
    summary = run_extract_features(str(store.root), stages=["mfcc"], runner="local")
    assert (summary["computed"], summary["failed"]) == (3, 0)
    assert len(list((tmp_path / "crash-counter").iterdir())) == 1  # it did crash, once


def test_a_failed_faces_unit_marks_its_mouths_unit_failed_and_the_run_completes(prefect_api, tmp_path, make_clip,
                                                                                 store, monkeypatch):
    _three_clips(tmp_path, make_clip, store)
    monkeypatch.setenv("EMONETS_TEST_CRASH", "faces:clip0:enospc")
    summary = run_extract_features(str(store.root), stages=["faces", "mouths"], runner="threads")
    assert summary["failed"] == 2 and summary["computed"] == 4, summary["errors"]
    assert any("No space left on device" in e for e in summary["errors"])
    assert any("not run" in e for e in summary["errors"])
