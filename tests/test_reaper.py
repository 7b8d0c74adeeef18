"""kill -9 of a run takes down what it started: pool workers, servers, helper processes."""

from __future__ import annotations

import subprocess
import sys
import time

from emonets.workers.reaper import descendants

RUN = """
import subprocess, sys, time
from emonets.workers.reaper import start_reaper
start_reaper()
# a child and a grandchild, as a process pool and its guarded child would be
child = subprocess.Popen([sys.executable, "-c",
    "import subprocess, sys, time; g = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)']);"
    "print(g.pid, flush=True); time.sleep(120)"], stdout=subprocess.PIPE, text=True)
grandchild = int(child.stdout.readline())
print(child.pid, grandchild, flush=True)
time.sleep(120)
"""


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(") ", 1)[1][0] != "Z"
    except FileNotFoundError:
        return False


def test_descendants_of_a_killed_run_are_killed():
    run = subprocess.Popen([sys.executable, "-c", RUN], stdout=subprocess.PIPE, text=True)
    child, grandchild = map(int, run.stdout.readline().split())
    assert {child, grandchild} <= set(descendants(run.pid))
    time.sleep(1.2)  # the reaper has seen them (it looks every 0.5 s)
    run.kill()
    run.wait()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and (_alive(child) or _alive(grandchild)):
        time.sleep(0.05)
    assert not _alive(child) and not _alive(grandchild)
