"""`emonets extract --runner dask` on a real Dask cluster: separate processes, as a team runs it.

A `dask scheduler` and two `dask worker` processes (one worker process, one thread each), every
one in its own process group and always torn down, plus the session's Prefect API (the
`prefect_api` fixture: a real server process; every process gets its URL). The CLI runs as a user
runs it. What it checks:

- the Dask run writes the same feature tables as a local (process pool) run of the same data;
- SIGKILL of one whole `dask worker` (nanny, worker process and its guarded child: a machine
  going down) while the run is going: the scheduler reschedules that worker's tasks (the unit it
  was computing, and the finished ones whose results lived in its memory, which then find their
  partition written and reuse it) on the other worker; the run completes, nothing is lost, and a
  re-run computes only what is missing (nothing) and equals the local tables.

Equality is exact. MFCC float32 values depend on the BLAS thread count (last digits; up to 6e-5
on values in the hundreds), and Dask's nanny starts workers with OMP/MKL/OPENBLAS_NUM_THREADS=1
(`distributed.nanny.pre-spawn-environ`), so the local run gets the same three settings. No table
has a wall-time column (`t` is the time in the clip), so nothing is dropped.

Wall times of the Dask and local runs are printed (run with -s to see them), not asserted.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
TABLE_KEYS = {
    "faces": ["clip_id", "frame"],
    "mouths": ["clip_id", "frame"],
    "mfcc": ["clip_id", "frame"],
    "motion_blocks": ["clip_id", "block"],
    "problems": ["clip_id", "stage", "reason"],
}
FEATURE_TABLES = {"faces": "faces", "mouths": "mouths", "mfcc": "mfcc", "motion_blocks": "motion"}  # table -> stage
ONE_THREAD = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
RUN_TIMEOUT = 600


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _cluster_env(api_url: str) -> dict[str, str]:
    """What every process of the cluster and the CLI gets: the one Prefect API, the code."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API")}
    path = [str(REPO), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    env.update(PREFECT_API_URL=api_url, DO_NOT_TRACK="1", PREFECT_SERVER_ANALYTICS_ENABLED="false",
               PYTHONPATH=os.pathsep.join(path), PREFECT_LOGGING_LEVEL="WARNING")
    return env


def _stop_group(proc: subprocess.Popen, grace: float = 10.0) -> None:
    """SIGTERM to the process's group, SIGKILL to it after ``grace`` s; reaps the leader."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            pass
    try:  # the group's other members (worker process, guarded child) even if the leader is gone
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait()


@pytest.fixture
def dask_cluster(prefect_api, tmp_path):
    """`dask scheduler` + two `dask worker`s as separate process groups, on the session's API."""
    from prefect.settings import PREFECT_API_URL

    env = _cluster_env(PREFECT_API_URL.value())
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    logs = tmp_path / "dask-logs"
    logs.mkdir()
    procs: dict[str, subprocess.Popen] = {}

    def spawn(name: str, *args: str) -> None:
        log = open(logs / f"{name}.log", "wb")
        procs[name] = subprocess.Popen([str(BIN / "dask"), *args], cwd=tmp_path, env=env, stdout=log,
                                       stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                       start_new_session=True)
        log.close()

    try:
        spawn("scheduler", "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard")
        for name in ("worker1", "worker2"):
            spawn(name, "worker", address, "--nworkers", "1", "--nthreads", "1", "--no-dashboard",
                  "--name", name, "--local-directory", str(tmp_path / f"dask-{name}"))
        _wait_for_workers(address, 2, procs, logs)
        yield {"address": address, "env": env, "procs": procs, "logs": logs}
    finally:
        for name in ("worker1", "worker2", "scheduler"):
            if name in procs:
                _stop_group(procs[name])


def _wait_for_workers(address: str, n: int, procs: dict, logs: Path, timeout: float = 180) -> None:
    from distributed import Client

    deadline = time.monotonic() + timeout
    while True:
        dead = [name for name, p in procs.items() if p.poll() is not None]
        assert not dead, f"{dead} exited: " + "".join((logs / f"{d}.log").read_text()[-2000:] for d in dead)
        try:
            with Client(address, timeout=10) as client:
                client.wait_for_workers(n, timeout=max(1.0, deadline - time.monotonic()))
            return
        except (OSError, TimeoutError) as err:
            if time.monotonic() > deadline:
                raise AssertionError(f"no {n} Dask workers at {address} within {timeout} s: {err}") from None
            time.sleep(1)


def _extract(store: Path, env: dict, *runner: str) -> subprocess.Popen:
    return subprocess.Popen([str(BIN / "emonets"), "extract", "--store", str(store), *runner], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)


def _finish(proc: subprocess.Popen, started: float) -> tuple[int, dict, str, float]:
    """Wait for an `emonets extract`; its exit status, JSON summary (last line), output, wall s."""
    try:
        out, _ = proc.communicate(timeout=RUN_TIMEOUT)
    except subprocess.TimeoutExpired:
        _stop_group(proc)
        out, _ = proc.communicate()
        raise AssertionError(f"emonets extract did not finish within {RUN_TIMEOUT} s:\n{out[-4000:]}")
    wall = time.perf_counter() - started
    lines = [line for line in out.splitlines() if line.startswith("{")]
    assert lines, f"no JSON summary (exit {proc.returncode}):\n{out[-4000:]}"
    return proc.returncode, json.loads(lines[-1]), out, wall


def _run(store: Path, env: dict, *runner: str) -> tuple[int, dict, str, float]:
    started = time.perf_counter()
    return _finish(_extract(store, env, *runner), started)


def _tables(root: Path) -> dict[str, pd.DataFrame]:
    from data_catalog import Store

    store = Store(root)
    return {t: store.read(t).sort_values(keys).reset_index(drop=True) for t, keys in TABLE_KEYS.items()}


def _assert_same_tables(got: dict[str, pd.DataFrame], want: dict[str, pd.DataFrame], what: str) -> None:
    for table in TABLE_KEYS:
        rows, wanted = len(got[table]), len(want[table])
        assert rows == wanted, f"{what}: {table} has {rows} rows, not {wanted}"
        pd.testing.assert_frame_equal(got[table], want[table], obj=f"{what}: {table}")


def _partition_count(root: Path) -> int:
    from data_catalog import Store

    store = Store(root)
    return sum(len(store.partitions(t)) for t in FEATURE_TABLES)


@pytest.mark.slow
def test_extract_on_a_real_dask_cluster_equals_local_and_survives_a_killed_worker(dask_cluster, tmp_path):
    from emonets.datasets.demo.dataset import make_demo_dataset
    from tasks.ingest import ingest_root

    address, env = dask_cluster["address"], dask_cluster["env"]
    data = tmp_path / "data"
    made = make_demo_dataset(data, per_class=1, seconds=1.0, fps=10, seed=1)  # 21 clips of 1 s
    stores = {name: tmp_path / f"store-{name}" for name in ("dask", "local", "killed")}
    for root in stores.values():
        assert ingest_root.fn(str(data), str(root), "auto")["clips"] == made["clips"]
    dask_runner = ("--runner", "dask", "--dask-address", address)

    # 1. the same data through the cluster and through the local process pool
    rc, dask_summary, out, dask_wall = _run(stores["dask"], env, *dask_runner)
    assert rc == 0 and dask_summary["failed"] == 0 and not dask_summary["errors"], out[-4000:]
    units = dask_summary["computed"]
    assert units == 4 * made["clips"] and dask_summary["cached"] == 0
    rc, local_summary, out, local_wall = _run(stores["local"], {**env, **ONE_THREAD}, "--runner", "local")
    assert rc == 0 and local_summary["failed"] == 0, out[-4000:]
    assert local_summary["by_stage"] == dask_summary["by_stage"]
    local = _tables(stores["local"])
    _assert_same_tables(_tables(stores["dask"]), local, "dask vs local")

    # 2. one whole worker killed mid-run
    worker = dask_cluster["procs"]["worker1"]
    started = time.perf_counter()
    run = _extract(stores["killed"], env, *dask_runner)
    try:
        deadline = time.monotonic() + RUN_TIMEOUT
        while (seen := _partition_count(stores["killed"])) < 8:
            assert run.poll() is None, f"the run ended before the kill:\n{run.stdout.read()[-4000:]}"
            assert time.monotonic() < deadline, "no partitions appeared"
            time.sleep(0.1)
        os.killpg(worker.pid, signal.SIGKILL)  # nanny, worker process and its guarded child
        killed_at = time.perf_counter() - started
        worker.wait(timeout=30)
        assert seen < units, "the kill came after the run had written everything"
    except BaseException:
        _stop_group(run)
        raise
    killed_rc, killed_summary, out, killed_wall = _finish(run, started)
    assert dask_cluster["procs"]["worker2"].poll() is None

    # what happened: Dask moved the lost worker's tasks to the other one; no unit crashed
    from data_catalog import Store

    store = Store(stores["killed"])
    problems = store.read("problems")
    crashes = problems[problems["reason"].str.contains("worker crashed|worker exited|stopped answering")]
    missing = [(t, c) for t in FEATURE_TABLES for c in store.read("clips")["clip_id"]
               if store.manifest(t, c) is None]
    for table, clip in missing:  # any unit lost must be named, with its crash, in `problems`
        assert ((crashes["clip_id"] == clip) & (crashes["stage"] == FEATURE_TABLES[table])).any(), (table, clip)
    assert killed_rc == 0 and killed_summary["failed"] == 0 and not killed_summary["errors"], out[-4000:]
    assert not missing and crashes.empty, (missing, crashes)
    assert killed_summary["computed"] + killed_summary["cached"] == units

    # the re-run computes only what is missing (here: nothing) and ends equal to the local run
    rc, again, out, again_wall = _run(stores["killed"], env, *dask_runner)
    assert rc == 0 and again["failed"] == 0, out[-4000:]
    assert (again["computed"], again["cached"]) == (len(missing), units - len(missing))
    _assert_same_tables(_tables(stores["killed"]), local, "killed-worker run vs local")

    print(f"\n[dask cluster] {made['clips']} clips, {units} units (4 stages), 2 dask workers x 1 thread, "
          f"{os.cpu_count()} CPUs")
    print(f"[dask cluster] wall: dask {dask_wall:.1f} s (flow {dask_summary['seconds']} s), "
          f"local process pool {local_wall:.1f} s (flow {local_summary['seconds']} s)")
    print(f"[dask cluster] killed worker1 at {killed_at:.1f} s ({seen} partitions written): run ended rc {killed_rc} "
          f"after {killed_wall:.1f} s, computed {killed_summary['computed']}, reused {killed_summary['cached']}; "
          f"re-run {again_wall:.1f} s, computed {again['computed']}, reused {again['cached']}")
