"""The peak resident memory of this process over a block of code, sampled by a thread.

``resource.getrusage`` only gives the high-water mark of the whole process, which says nothing
about the second specialist trained after a heavier first; the training summary and the scale
benchmark want each step's own peak. Linux (/proc); elsewhere the process's high-water mark.
"""

from __future__ import annotations

import os
import resource
import sys
import threading
from pathlib import Path

_STATM = Path("/proc/self/statm")
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def rss_mb() -> float | None:
    """This process's resident memory now, MB (None where /proc is absent)."""
    try:
        return int(_STATM.read_text().split()[1]) * _PAGE / 2**20
    except (OSError, IndexError, ValueError):
        return None


def high_water_mb() -> float:
    """The process's peak resident memory since it started, MB."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024


class PeakRss:
    """``with PeakRss() as peak: ...`` then ``peak.mb``: the largest resident memory of the
    process seen in the block (what it held on entry included: ``peak.start_mb``)."""

    def __init__(self, interval: float = 0.05):
        self.interval = interval
        self.mb = self.start_mb = 0.0
        self._thread: threading.Thread | None = None

    def _sample(self) -> None:
        now = rss_mb()
        if now is not None:
            self.mb = max(self.mb, now)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def __enter__(self) -> "PeakRss":
        self.mb, self._stop, self._thread = 0.0, threading.Event(), None
        now = rss_mb()
        if now is None:
            return self
        self.start_mb = self.mb = now
        self._thread = threading.Thread(target=self._run, name="peak-rss", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        if self._thread is None:
            self.mb = high_water_mb()
            return
        self._stop.set()
        self._thread.join()
        self._sample()
