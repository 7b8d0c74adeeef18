"""What the Prefect server way costs: server start, deploy, worker pickup, a no-change run.

Starts `scripts/prefect-server.sh start` on a free port with a fresh temporary store (so the
first start includes creating the SQLite database), times the script's phases, then creates
``--runs`` runs of `extract-features` (MFCC only, on a small generated demo dataset) one after
the other for the worker the script started, and times each: creation -> picked up (state
Pending) -> Running -> Completed. The first run computes the MFCC, later ones are no-change runs.
A second `start` on the same store measures a restart. Everything is stopped at the end.

    nice -n 10 .venv/bin/python benchmarks/bench_orchestration.py [--runs 3] [--poll 10]

Prints a human table, then ONE JSON object as its last line.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
SCRIPT = REPO / "scripts" / "prefect-server.sh"
PREFECT = str(Path(sys.executable).with_name("prefect"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def script(command: str, env: dict) -> tuple[float, str]:
    started = time.perf_counter()
    done = subprocess.run(["bash", str(SCRIPT), command], cwd=REPO, env=env, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"prefect-server.sh {command} failed:\n{done.stdout}\n{done.stderr}")
    return time.perf_counter() - started, done.stdout


def phase(out: str, pattern: str) -> float | None:
    found = re.search(pattern, out)
    return float(found.group(1)) if found else None


def timed_run(env: dict, store: Path) -> dict:
    """Create one extract-features run and follow its states through the API."""
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    started = time.perf_counter()
    done = subprocess.run([PREFECT, "deployment", "run", "extract-features/extract-features",
                           "--param", f"store_root={store}", "--param", 'stages=["mfcc"]'],
                          cwd=REPO, env=env, capture_output=True, text=True, check=True)
    created = time.perf_counter()
    run_id = re.search(r"UUID: ([0-9a-f-]{36})", done.stdout).group(1)
    seen: dict[str, float] = {}
    with temporary_settings(updates={PREFECT_API_URL: env["PREFECT_API_URL"]}):
        with get_client(sync_client=True) as client:
            while True:
                state = client.read_flow_run(run_id).state
                seen.setdefault(state.type.value, time.perf_counter())
                if state.is_final():
                    break
                if time.perf_counter() - created > 600:
                    raise SystemExit(f"flow run {run_id} still {state.name} after 600 s")
                time.sleep(0.1)
    pending = seen.get("PENDING", seen.get("RUNNING", seen[state.type.value]))
    return {"state": state.name, "cli_create_s": round(created - started, 2),
            "pickup_s": round(pending - created, 2),
            "to_running_s": round(seen.get("RUNNING", pending) - created, 2),
            "total_s": round(time.perf_counter() - created, 2)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--poll", type=int, default=10, help="worker poll interval, s (Prefect's default 10)")
    args = ap.parse_args()

    from emonets.datasets.demo.dataset import make_demo_dataset
    from tasks.ingest import ingest_root

    tmp = Path(tempfile.mkdtemp(prefix="emonets-bench-orch-"))
    store, port = tmp / "store", free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "EMONETS_"))}
    env.update(STORE=str(store), PORT=str(port), UI="false", PREFECT=PREFECT, DO_NOT_TRACK="1",
               PREFECT_API_URL=f"http://127.0.0.1:{port}/api", PREFECT_HOME=str(store / "_prefect" / "home"),
               PREFECT_SERVER_ANALYTICS_ENABLED="false", PREFECT_WORKER_QUERY_SECONDS=str(args.poll))
    data = make_demo_dataset(tmp / "demo", per_class=1, seconds=1.0, fps=10)
    ingest_root.fn(data["root"], str(store), "auto")
    runs = []
    try:
        first_s, first = script("start", env)
        for _ in range(args.runs):
            runs.append(timed_run(env, store))
        script("stop", env)
        again_s, again = script("start", env)
    finally:
        subprocess.run(["bash", str(SCRIPT), "stop"], cwd=REPO, env=env, capture_output=True)
    result = {
        "server_first_start_s": phase(first, r"healthy at \S+ after ([\d.]+) s"),
        "server_restart_s": phase(again, r"healthy at \S+ after ([\d.]+) s"),
        "deploy_all_s": phase(first, r"registered in ([\d.]+) s"),
        "redeploy_all_s": phase(again, r"registered in ([\d.]+) s"),
        "script_start_total_s": round(first_s, 1), "script_restart_total_s": round(again_s, 1),
        "worker_poll_s": args.poll, "runs": runs, "clips": data["clips"], "cpus": os.cpu_count(),
    }
    print(f"{'phase':<34}{'seconds':>10}")
    for key in ("server_first_start_s", "deploy_all_s", "script_start_total_s", "server_restart_s",
                "redeploy_all_s", "script_restart_total_s"):
        print(f"{key:<34}{result[key]!s:>10}")
    print(f"\nextract-features (mfcc, {data['clips']} clips), worker polling every {args.poll} s")
    print(f"{'run':<6}{'state':<12}{'pickup':>8}{'running':>9}{'total':>8}")
    for i, r in enumerate(runs):
        print(f"{i + 1:<6}{r['state']:<12}{r['pickup_s']:>8}{r['to_running_s']:>9}{r['total_s']:>8}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
