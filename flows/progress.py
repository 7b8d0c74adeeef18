"""A Rich progress bar (done of total, rate, time left) for long CLI work."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterator

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from flows.console import console


# The progress callback of the run in this process. A callable can't be a flow parameter
# (parameters are serialised for the Prefect API), so flows look it up here instead.
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


class RateColumn(ProgressColumn):
    """Items per second (blank until Rich has a speed estimate)."""

    def render(self, task) -> Text:
        return Text(f"{task.speed:.2f}/s" if task.speed else "")


@contextmanager
def rich_progress(label: str) -> Iterator[Callable[[int, int], None]]:
    """Yield ``update(done, total)``; the bar shows tasks done of total, rate and time left."""
    columns = [TextColumn(f"[bold]{label}"), BarColumn(), MofNCompleteColumn(), RateColumn(),
               TimeElapsedColumn(), TimeRemainingColumn()]
    # No stdout redirection: Prefect pickles the run context for its worker processes.
    with Progress(*columns, console=console, redirect_stdout=False, redirect_stderr=False) as progress:
        task_id = progress.add_task(label, total=None)

        def update(done: int, total: int) -> None:
            progress.update(task_id, completed=done, total=total)

        yield update
