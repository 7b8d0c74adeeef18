"""A watcher that kills what a run started when the run itself is killed.

``kill -9`` of a run gives it no chance to stop its process-pool workers, the temporary
Prefect server it started, or multiprocessing's resource tracker; they lived on for minutes,
the workers still writing into a store whose lock was gone. :func:`start_reaper` starts a
small separate process (its own session, so a kill of the run's process group spares it)
that notes the run's descendants every half second from ``/proc`` and, once the run is gone,
sends each one it saw that is still the same process SIGKILL. On a normal exit it does the
same for anything left behind. Linux only (``/proc``); elsewhere it does nothing.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

POLL_SECONDS = 0.5


def start_reaper(pid: int | None = None) -> subprocess.Popen | None:
    """Watch ``pid`` (default: this process) from a separate process; None where /proc is missing."""
    if not Path("/proc/self/stat").exists():
        return None
    pid = pid or os.getpid()
    return subprocess.Popen([sys.executable, "-m", "emonets.workers.reaper", str(pid), str(_start_time(pid))],
                            start_new_session=True, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


_reaper: subprocess.Popen | None = None


def ensure_reaper() -> None:
    """Start this process's reaper once (later calls do nothing)."""
    global _reaper
    if _reaper is None:
        _reaper = start_reaper()


def _stat(pid: int) -> tuple[int, int] | None:
    """(parent pid, start time) of a live process, None when gone or a zombie."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    fields = raw[raw.rindex(")") + 2:].split()
    if fields[0] == "Z":
        return None
    return int(fields[1]), int(fields[19])


def _start_time(pid: int) -> int:
    stat = _stat(pid)
    return stat[1] if stat else -1


def descendants(root: int) -> dict[int, int]:
    """Every live descendant of ``root``: pid -> start time."""
    children: dict[int, list[tuple[int, int]]] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            stat = _stat(int(entry.name))
            if stat:
                children.setdefault(stat[0], []).append((int(entry.name), stat[1]))
    found, todo = {}, [root]
    while todo:
        for pid, started in children.get(todo.pop(), []):
            if pid not in found:
                found[pid] = started
                todo.append(pid)
    return found


def watch(pid: int, started: int, *, poll: float = POLL_SECONDS) -> None:
    """Until ``pid`` (with that start time) is gone, remember its descendants; then kill them."""
    seen: dict[int, int] = {}
    while _start_time(pid) == started:
        seen.update(descendants(pid))
        seen.pop(os.getpid(), None)  # the reaper is a child of the run too
        time.sleep(poll)
    for child, child_started in seen.items():
        if _start_time(child) == child_started:  # the same process, not a reused pid
            try:
                os.kill(child, signal.SIGKILL)
            except ProcessLookupError:
                pass


if __name__ == "__main__":
    watch(int(sys.argv[1]), int(sys.argv[2]))
