"""The data catalog: declared tables (catalog.yaml) and the store that reads and writes them."""

from data_catalog.catalog import Catalog, TableSpec, load_catalog
from data_catalog.store import (
    PartitionManifest,
    SchemaMismatchError,
    Store,
    StoreLockedError,
    default_store_root,
)

__all__ = [
    "Catalog",
    "PartitionManifest",
    "SchemaMismatchError",
    "Store",
    "StoreLockedError",
    "TableSpec",
    "default_store_root",
    "load_catalog",
]
