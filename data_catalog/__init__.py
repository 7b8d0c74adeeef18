"""The data catalog: declared tables (catalog.yaml) and the store that reads and writes them.

The names below load on first use (PEP 562), so ``data_catalog.version`` or ``.atomic`` can be
imported without pyarrow and pandas behind the store.
"""

_WHERE = {"Catalog": "catalog", "TableSpec": "catalog", "load_catalog": "catalog", "PartitionManifest": "store",
          "SchemaMismatchError": "store", "Store": "store", "StoreLockedError": "store",
          "default_store_root": "store"}

__all__ = sorted(_WHERE)


def __getattr__(name: str):
    if name in _WHERE:
        import importlib

        return getattr(importlib.import_module(f"data_catalog.{_WHERE[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
