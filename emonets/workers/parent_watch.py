"""Make a worker process exit when the process that started it dies.

A run killed with ``kill -9`` cannot tell its pool workers or their guarded children to stop;
left alone they keep computing and writing partitions into a store whose lock is already
released. Each such process runs a small daemon thread that notices it has been re-parented
(its parent is gone) and exits at once. Polling ``getppid`` is used rather than
``PR_SET_PDEATHSIG``, which fires when the *thread* that forked exits, not the process.
"""

from __future__ import annotations

import os
import threading

POLL_SECONDS = 0.2
_started = False


def exit_when_parent_dies(parent: int | None = None, *, poll: float = POLL_SECONDS) -> None:
    """Start (once per process) the watch thread; ``parent`` defaults to the current parent."""
    global _started
    if _started:
        return
    _started = True
    expected = os.getppid() if parent is None else parent
    if os.getppid() != expected:  # already orphaned before the watch began
        os._exit(70)

    def watch() -> None:
        event = threading.Event()
        while not event.wait(poll):
            if os.getppid() != expected:
                os._exit(70)  # EX_SOFTWARE; no cleanup: the parent's run is over

    threading.Thread(target=watch, name="emonets-parent-watch", daemon=True).start()
