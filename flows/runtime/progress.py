"""The progress callback of the run in this process, for flows to report done-of-total to.

A callable cannot be a flow parameter (parameters are serialised for the Prefect API), so the
command that starts a flow registers its callback here and the flow looks it up.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterator

_callbacks: list[Callable[[int, int], None]] = []


def current_progress() -> Callable[[int, int], None] | None:
    return _callbacks[-1] if _callbacks else None


@contextmanager
def reporting_progress(callback: Callable[[int, int], None] | None) -> Iterator[None]:
    """Make ``callback`` the current progress callback for the duration of the block."""
    if callback is None:
        yield
        return
    _callbacks.append(callback)
    try:
        yield
    finally:
        _callbacks.remove(callback)


