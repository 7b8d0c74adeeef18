"""One run per store at a time: a re-entrant (per process) wrapper around the store's file lock."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from data_catalog import Store

_held: dict[str, int] = {}


@contextmanager
def exclusive_store(store: Store) -> Iterator[None]:
    """Hold the store's lock; nested flows in the same process share the outer hold."""
    key = str(store.root)
    if _held.get(key):
        _held[key] += 1
        try:
            yield
        finally:
            _held[key] -= 1
        return
    with store.lock():
        _held[key] = 1
        try:
            yield
        finally:
            _held.pop(key, None)
