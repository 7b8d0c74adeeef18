"""One run per store at a time: a re-entrant (per process) wrapper around the store's file lock.

The `emonets` command takes the lock (through ``exclusive_store``) before Prefect is imported, so
a second run on a busy store is refused at once; the flows it then starts take the same lock
again, which this process already holds, so they go on. Nothing here imports Prefect.
"""

from __future__ import annotations

import hashlib
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from data_catalog import Store
from emonets.workers.reaper import ensure_reaper

_held: dict[str, int] = {}


@contextmanager
def exclusive_store(store: Store) -> Iterator[None]:
    """Hold the store's lock; nested holds in the same process (CLI -> flow -> subflow) share the outer one."""
    key = str(store.root)
    if _held.get(key):
        _held[key] += 1
        try:
            yield
        finally:
            _held[key] -= 1
        return
    with store.lock():
        ensure_reaper()  # a kill -9 of this run takes its workers and servers with it
        _held[key] = 1
        try:
            yield
        finally:
            _held.pop(key, None)


# The stores `predict` and `evaluate` write (never the training store itself), so the CLI can
# lock the one a run will write before it starts the flow.
def predict_store(home: Store) -> Store:
    return Store(home.path("_predict"))


def evaluate_store(home: Store, data_root: str | Path) -> Store:
    root = str(Path(data_root).expanduser().resolve())
    return Store(home.path("_eval", hashlib.sha256(root.encode()).hexdigest()[:12]))
