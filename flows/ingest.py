"""The `ingest` flow: one data root into the store's `clips` and `problems` tables, recorded as a
Prefect run (the `emonets ingest` command runs it when a Prefect API is configured; without one
it calls the same library function directly, as train-all's ingest task does)."""

from __future__ import annotations

from pathlib import Path

from prefect import flow

from data_catalog import Store, default_store_root
from emonets.media.paths import to_fs
from flows.runtime.locking import exclusive_store
from tasks.ingest import ingest_root


@flow(name="ingest")
def ingest(root: str, store_root: str | None = None, format: str = "auto", calm: str = "drop",
           allow_outside: bool = False) -> dict:
    """Scan ``root`` (a folder or a CSV list; its portable form, emonets.media.paths, so any file
    name is valid text as a flow parameter) and write its partitions; return the summary."""
    store = Store(store_root or default_store_root())
    with exclusive_store(store):
        return ingest_root(to_fs(str(Path(root).expanduser())), str(store.root), format, calm, allow_outside)
