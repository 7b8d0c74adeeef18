"""Progress of a training run, from wherever it runs to whoever shows it.

Training may run in the caller's thread, a task runner's thread, a process-pool worker or a
spawned DDP process, so reports travel through the one thing all of those share: a JSON-lines
file named by the environment variable ``EMONETS_TRAINING_PROGRESS``. A reporter (the CLI) sets
it with :func:`reporting_to` and reads the file as it grows (:class:`EventReader`); producers
call :func:`emit`, which does nothing when no reporter is active, so plain library use, Prefect
deployments and remote Dask workers train silently. One ``os.write`` of one short line on a file
opened for appending, so lines from several processes do not interleave.

:class:`TrainingBoard` folds the events into one :class:`SpecialistProgress` per specialist
(fit i of n, epoch / total, last validation figure, seconds per epoch, time left).
"""

from __future__ import annotations

import json
import logging
import os
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

ENV = "EMONETS_TRAINING_PROGRESS"
log = logging.getLogger("emonets.training")


def active() -> bool:
    """Whether a reporter listens (in this process or one that started it)."""
    return bool(os.environ.get(ENV))


def emit(kind: str, specialist: str, **fields: Any) -> None:
    """Send one event to the active reporter; never raises (progress must not break training)."""
    log.debug("%s %s %s", specialist, kind, fields)
    path = os.environ.get(ENV)
    if not path:
        return
    line = json.dumps({"kind": kind, "specialist": specialist, "t": time.time(), **fields}, default=str)
    try:
        # No O_CREAT: once the reporter has gone (its file removed) nothing is left behind.
        fd = os.open(path, os.O_WRONLY | os.O_APPEND)
        try:
            os.write(fd, (line + "\n").encode())
        finally:
            os.close(fd)
    except OSError:
        pass


@contextmanager
def reporting_to(path: str | Path) -> Iterator[None]:
    """Make the (existing) file ``path`` the destination of every event emitted in the block,
    by this process and by the processes it starts meanwhile."""
    previous = os.environ.get(ENV)
    os.environ[ENV] = str(path)
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(ENV, None)
        else:
            os.environ[ENV] = previous


@contextmanager
def training(specialist: str, *, fits: int = 1, phase: str | None = None, then: str | None = None) -> Iterator[None]:
    """Bracket one specialist's training: ``fits`` Lightning fits are expected (an ensemble
    has several), ``phase`` is shown until the first, ``then`` after the last."""
    emit("begin", specialist, fits=fits, phase=phase, then=then)
    ok = False
    try:
        yield
        ok = True
    finally:
        emit("end", specialist, ok=ok)


def phase(specialist: str, text: str) -> None:
    """Say what a specialist does now where it has no epochs (fitting an SVM, scoring)."""
    emit("phase", specialist, phase=text)


class EventReader:
    """The complete lines appended to a reporter's file since the last read."""

    def __init__(self, path: str | Path):
        self.path, self._offset, self._partial = Path(path), 0, b""

    def read(self) -> list[dict]:
        try:
            with open(self.path, "rb") as f:
                f.seek(self._offset)
                data = f.read()
        except OSError:
            return []
        self._offset += len(data)
        *lines, self._partial = (self._partial + data).split(b"\n")
        events = []
        for line in lines:
            try:
                events.append(json.loads(line))
            except ValueError:
                continue
        return events


@dataclass
class SpecialistProgress:
    """Where one specialist's training stands, as its events told."""

    specialist: str
    fits: int = 1
    fit: int = 0                     # fits started (1-based index of the current one)
    epoch: int = 0                   # epochs done in the current fit
    max_epochs: int | None = None
    metric: str | None = None        # the monitored figure (val_loss, val_acc, ...) and its last value
    value: float | None = None
    seconds: list[float] = field(default_factory=list)  # every epoch's seconds, all fits
    phase: str | None = None         # work without epochs, shown instead of epochs
    then: str | None = None
    status: str = "running"          # running | done | failed
    fitting: bool = False            # inside a Lightning fit now
    time_cap_left: float | None = None  # a wall-clock cap's seconds left (face_cnn max_minutes)
    last_t: float | None = None      # when the last epoch (or fit) began counting

    @property
    def seconds_per_epoch(self) -> float | None:
        return sum(self.seconds) / len(self.seconds) if self.seconds else None

    def epochs_done_and_total(self) -> tuple[int, int | None]:
        """Epochs done over all fits, and their most (every fit running to max_epochs)."""
        if not self.max_epochs or not self.fit:
            return 0, None
        done = (self.fit - 1) * self.max_epochs + self.epoch
        return done, max(max(self.fits, self.fit) * self.max_epochs, done)

    def seconds_left(self, now: float | None = None) -> float | None:
        """At most this long until the fits end (early stopping may end them sooner)."""
        done, total = self.epochs_done_and_total()
        if not self.fitting or total is None or self.seconds_per_epoch is None:
            return None
        left = (total - done) * self.seconds_per_epoch
        if self.last_t is not None:
            left = max(0.0, left - ((now or time.time()) - self.last_t))
        if self.time_cap_left is not None:
            left = min(left, self.time_cap_left)
        return left


class TrainingBoard:
    """Folds events into one SpecialistProgress per specialist, in the order they began."""

    def __init__(self) -> None:
        self.specialists: dict[str, SpecialistProgress] = {}

    def apply(self, event: dict) -> SpecialistProgress:
        name, kind = event["specialist"], event.get("kind")
        state = self.specialists.get(name)
        if state is None or kind == "begin":
            state = self.specialists[name] = SpecialistProgress(name)
        if kind == "begin":
            state.fits = int(event.get("fits") or 0)
            state.phase, state.then = event.get("phase"), event.get("then")
        elif kind == "phase":
            state.phase = event.get("phase")
        elif kind == "fit":
            state.fit += 1
            state.epoch, state.phase, state.fitting = 0, None, True
            state.max_epochs = event.get("max_epochs")
            state.last_t = event.get("t")
        elif kind == "epoch":
            state.epoch = int(event["epoch"])
            state.max_epochs = event.get("max_epochs", state.max_epochs)
            state.metric, state.value = event.get("metric"), event.get("value")
            if event.get("seconds") is not None:
                state.seconds.append(float(event["seconds"]))
            state.time_cap_left = event.get("time_cap_left")
            state.last_t = event.get("t")
        elif kind == "fit_end":
            state.fitting = False
            state.phase = state.then if state.fit >= state.fits else None
        elif kind == "end":
            state.status = "done" if event.get("ok") else "failed"
            state.phase, state.fitting = None, False
        return state


__all__ = ["ENV", "EventReader", "SpecialistProgress", "TrainingBoard", "active", "emit", "phase",
           "reporting_to", "training"]
