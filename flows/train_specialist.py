"""The `train-specialist` flow: fit one specialist on the store's tables (reused when unchanged)."""

from __future__ import annotations

from prefect import flow

from data_catalog import Store
from flows.locking import exclusive_store
from tasks.train import train_in_flow


@flow(name="train-specialist")
def train_specialist(specialist: str, store_root: str, config: dict | None = None,
                     max_epochs: int | None = None, clip_partitions: list[str] | None = None) -> dict:
    """Train ``specialist`` on split train (tuned on val) and write its predictions."""
    store = Store(store_root)
    with exclusive_store(store):
        return train_in_flow(store, specialist, config, max_epochs, clip_partitions).result()
