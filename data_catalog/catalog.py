"""Parse catalog.yaml into table specs with Arrow schemas."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import pyarrow as pa
import yaml

CATALOG_FILE = Path(__file__).with_name("catalog.yaml")

_SCALAR_TYPES: dict[str, pa.DataType] = {
    "string": pa.string(),
    "int64": pa.int64(),
    "int32": pa.int32(),
    "float32": pa.float32(),
    "float64": pa.float64(),
    "bool": pa.bool_(),
    "binary": pa.binary(),
}


def parse_type(spec: str) -> pa.DataType:
    """Arrow type for a catalog type name such as ``float32`` or ``list<float32>``."""
    spec = spec.strip()
    if spec.startswith("list<") and spec.endswith(">"):
        return pa.list_(parse_type(spec[5:-1]))
    try:
        return _SCALAR_TYPES[spec]
    except KeyError:
        raise ValueError(f"unknown column type {spec!r} in {CATALOG_FILE.name}") from None


@dataclass(frozen=True)
class TableSpec:
    """One declared table: where it lives, what it holds, who writes it."""

    name: str
    path: str
    schema: pa.Schema
    partitioning: str
    producer: str
    description: str = ""
    added_columns: tuple[str, ...] = ()  # newer than some stored partitions: read as null there


@dataclass(frozen=True)
class Catalog:
    tables: dict[str, TableSpec]

    def __getitem__(self, name: str) -> TableSpec:
        try:
            return self.tables[name]
        except KeyError:
            known = ", ".join(sorted(self.tables))
            raise KeyError(f"table {name!r} is not in the catalog (known: {known})") from None


_REGISTERED: dict[str, TableSpec] = {}


def register_table(name: str, schema: dict[str, str], *, path: str | None = None, producer: str = "",
                   partitioning: str = "one partition per work unit", description: str = "") -> TableSpec:
    """Declare a table beside catalog.yaml's (a plugin stage's); a name the file has is refused."""
    raw = yaml.safe_load(CATALOG_FILE.read_text())
    if name in raw["tables"]:
        raise ValueError(f"table {name!r} is already declared in {CATALOG_FILE.name}")
    spec = TableSpec(name=name, path=path or name,
                     schema=pa.schema([pa.field(col, parse_type(typ)) for col, typ in schema.items()]),
                     partitioning=partitioning, producer=producer, description=description)
    _REGISTERED[name] = spec
    load_catalog.cache_clear()
    return spec


@lru_cache(maxsize=None)
def load_catalog(path: Path = CATALOG_FILE) -> Catalog:
    """Read and validate the catalog file once per process (plus the tables registered)."""
    raw = yaml.safe_load(Path(path).read_text())
    tables = {}
    for name, entry in raw["tables"].items():
        fields = [pa.field(col, parse_type(typ)) for col, typ in entry["schema"].items()]
        tables[name] = TableSpec(
            name=name,
            path=entry["path"],
            schema=pa.schema(fields),
            partitioning=entry.get("partitioning", ""),
            producer=entry.get("producer", ""),
            description=entry.get("description", ""),
            added_columns=tuple(entry.get("added_columns") or ()),
        )
    return Catalog({**tables, **_REGISTERED})
