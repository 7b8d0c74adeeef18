"""The ingest task: one data root into the store's `clips` and `problems` tables."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from emonets.ingest_store import ingest_into_store, root_partition  # noqa: F401 (re-export)


@task(name="ingest", retries=1, retry_delay_seconds=2, cache_policy=NO_CACHE, persist_result=False)
def ingest_root(root: str, store_root: str, fmt: str = "auto", calm: str = "drop",
                allow_outside: bool = False, keep_copies: bool = False) -> dict:
    """Scan ``root`` and write its partitions (emonets.ingest_store.ingest_into_store)."""
    return ingest_into_store(root, store_root, fmt, calm, allow_outside, keep_copies)
