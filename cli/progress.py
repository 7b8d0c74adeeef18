"""Rich progress for long CLI work: a bar (done of total, rate, time left) for extraction, and
a row per specialist while training (``training_progress``)."""

from __future__ import annotations

import os
import tempfile
import threading
import time
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

from emonets.training_progress import EventReader, SpecialistProgress, TrainingBoard, reporting_to
from cli.console import console
from flows.runtime.progress import reporting_progress


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


def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def training_detail(state: SpecialistProgress) -> str:
    """One line of a specialist's training: fit i/n, epoch / total, the last figure, s/epoch."""
    if state.status != "running":
        return state.status
    parts = []
    if state.fits > 1 and state.fit:
        parts.append(f"fit {state.fit}/{state.fits}")
    if state.phase:
        parts.append(state.phase)
    elif state.fit:
        total = max(state.max_epochs or 0, state.epoch)
        parts.append(f"epoch {state.epoch}/{total or '?'}")
        if state.metric and state.value is not None:
            parts.append(f"{state.metric} {state.value:.4g}")
        if state.seconds_per_epoch is not None:
            parts.append(f"{state.seconds_per_epoch:.1f} s/epoch")
    else:
        parts.append("starting")
    return " · ".join(parts)


class LeftColumn(ProgressColumn):
    """Time left: a training row's own estimate (at most, early stopping may end it sooner),
    Rich's estimate for other rows."""

    def render(self, task) -> Text:
        if "left" in task.fields:
            left = task.fields["left"]
            return Text(f"≤{_clock(left)} left" if left is not None else "", style="progress.remaining")
        remaining = task.time_remaining
        return Text(f"{_clock(remaining)} left" if remaining is not None and not task.finished else "",
                    style="progress.remaining")


class _TrainingView:
    """Keeps the Progress rows in step with the board (one row per specialist, one for extraction)."""

    def __init__(self, progress: Progress, reader: EventReader):
        self.progress, self.reader, self.board = progress, reader, TrainingBoard()
        self.rows: dict[str, int] = {}
        self.lock = threading.Lock()

    def extraction(self, done: int, total: int) -> None:
        with self.lock:
            if "extracting" not in self.rows:
                self.rows["extracting"] = self.progress.add_task("extracting", total=None, detail="")
        self.progress.update(self.rows["extracting"], completed=done, total=total, detail=f"{done}/{total} tasks")

    def refresh(self) -> None:
        with self.lock:
            for event in self.reader.read():
                self.board.apply(event)
            now = time.time()
            for name, state in self.board.specialists.items():
                if name not in self.rows:
                    self.rows[name] = self.progress.add_task(name, total=None, detail="", left=None)
                task_id = self.rows[name]
                done, total = state.epochs_done_and_total()
                if state.status != "running":
                    self.progress.update(task_id, completed=total or 1, total=total or 1,
                                         detail=training_detail(state), left=None)
                    self.progress.stop_task(task_id)
                    continue
                fitting = state.fitting and total is not None
                self.progress.update(task_id, completed=done if fitting else 0, total=total if fitting else None,
                                     detail=training_detail(state), left=state.seconds_left(now))

    def poll(self, stop: threading.Event, seconds: float) -> None:
        while not stop.wait(seconds):
            self.refresh()


@contextmanager
def training_progress(*, poll_seconds: float = 0.5) -> Iterator[None]:
    """Show, while the block runs, a row per specialist being trained (fit i/n for an ensemble,
    epoch / total, the last validation figure, seconds per epoch, time left) and the extraction
    before it.

    The specialists report through a file (emonets.training_progress) that this polls, so their
    reports arrive whether training runs in this thread, a task runner's thread, a process-pool
    worker or a spawned DDP process. Nothing goes to Prefect's logs.
    """
    fd, path = tempfile.mkstemp(prefix="emonets-training-", suffix=".jsonl")
    os.close(fd)
    columns = [TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.fields[detail]}"),
               TimeElapsedColumn(), LeftColumn()]
    stop = threading.Event()
    try:
        # No stdout redirection: Prefect pickles the run context for its worker processes. Into a
        # pipe or a log the rows are left out (transient): the command's own lines say the outcome.
        with Progress(*columns, console=console, redirect_stdout=False, redirect_stderr=False,
                      transient=not console.is_terminal) as progress:
            view = _TrainingView(progress, EventReader(path))
            poller = threading.Thread(target=view.poll, args=(stop, poll_seconds), name="training-progress",
                                      daemon=True)
            poller.start()
            try:
                with reporting_to(path), reporting_progress(view.extraction):
                    yield
            finally:
                stop.set()
                poller.join()
                view.refresh()  # the last reports, so the rows end as the training did
    finally:
        os.unlink(path)
