"""The feature store: catalog tables as Parquet partitions under one root, each with a manifest.

Layout: ``<root>/<table path>/<partition>/part.parquet`` and ``manifest.json`` beside it. The
manifest is written last, so a partition without one is incomplete and invisible to readers.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable
from urllib.parse import quote, unquote

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from data_catalog.atomic import TEMP_PREFIX, atomic_path, write_json_atomic
from data_catalog.catalog import Catalog, TableSpec, load_catalog
from data_catalog.version import code_version

STORE_ENV = "EMONETS_STORE"
DEFAULT_STORE = "./emonets-store"
_SAFE = re.compile(r"[^A-Za-z0-9._=-]")


class SchemaMismatchError(ValueError):
    """A table's data does not match the schema the catalog declares for it."""


class StoreLockedError(RuntimeError):
    """Another run holds the store's lock."""


def default_store_root() -> Path:
    """The store root: ``$EMONETS_STORE`` or ``./emonets-store``."""
    raw = os.environ.get(STORE_ENV) or DEFAULT_STORE
    if raw.startswith("file://"):
        raw = raw[len("file://"):]
    if "://" in raw:
        raise ValueError(f"{STORE_ENV}={raw!r}: only local paths (or file://) are supported so far")
    return Path(raw).expanduser().resolve()


def partition_dirname(partition: str) -> str:
    """A file-system-safe, reversible folder name for a partition key."""
    if not partition:
        raise ValueError("partition key must not be empty")
    return quote(partition, safe="") if _SAFE.search(partition) or partition.startswith(".") else partition


def content_fingerprint(table: pa.Table) -> str:
    """sha256 of a table's Arrow IPC bytes: equal data gives an equal fingerprint."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return hashlib.sha256(sink.getvalue().to_pybytes()).hexdigest()


@dataclass
class PartitionManifest:
    """What a partition holds and what it was made from (written beside the Parquet file)."""

    table: str
    partition: str
    rows: int
    fingerprint: str
    library_version: str
    inputs: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    stats: dict[str, Any] = field(default_factory=dict)
    created: float = 0.0

    @classmethod
    def from_file(cls, path: Path) -> "PartitionManifest":
        return cls(**json.loads(path.read_text()))


class Store:
    """Reads and writes catalog tables under one root folder."""

    def __init__(self, root: str | Path | None = None, *, catalog: Catalog | None = None):
        self.root = Path(root).expanduser().resolve() if root is not None else default_store_root()
        self._catalog = catalog

    @property
    def catalog(self) -> Catalog:
        """The given catalog, else catalog.yaml's tables and those registered so far (a plugin
        stage may declare its table after this store was opened)."""
        return self._catalog or load_catalog()

    # -- paths -------------------------------------------------------------------------
    def table_dir(self, table: str) -> Path:
        return self.root / self.catalog[table].path

    def partition_dir(self, table: str, partition: str) -> Path:
        return self.table_dir(table) / partition_dirname(partition)

    def path(self, *parts: str) -> Path:
        """A path under the store for non-table outputs (models, reports, caches)."""
        return self.root.joinpath(*parts)

    # -- writing -----------------------------------------------------------------------
    def write(
        self,
        table: str,
        data: pd.DataFrame | pa.Table,
        *,
        partition: str = "all",
        inputs: dict[str, Any] | None = None,
        config: dict[str, Any] | None = None,
        stats: dict[str, Any] | None = None,
    ) -> PartitionManifest:
        """Write one partition atomically: Parquet first, then its manifest.

        ``inputs`` fingerprints what it was made from and ``config`` the stage settings: a later
        run compares both to decide whether the partition is still current. ``stats`` is free-form.
        """
        spec = self.catalog[table]
        arrow = conform(spec, data)
        fingerprint = content_fingerprint(arrow)
        unchanged = self._unchanged(table, partition, fingerprint, inputs, config)
        if unchanged is not None:  # same rows from the same inputs: keep the finished partition as is
            return unchanged
        folder = self.partition_dir(table, partition)
        folder.mkdir(parents=True, exist_ok=True)
        manifest_path = folder / "manifest.json"
        # A rewrite first retracts the old manifest: a crash in between leaves the
        # partition incomplete (recomputed next time), never old rows under a new manifest.
        manifest_path.unlink(missing_ok=True)
        with atomic_path(folder / "part.parquet") as tmp:
            pq.write_table(arrow, tmp)
        manifest = PartitionManifest(
            table=table,
            partition=partition,
            rows=arrow.num_rows,
            fingerprint=fingerprint,
            library_version=code_version(),
            inputs=dict(inputs or {}),
            config=dict(config or {}),
            stats=dict(stats or {}),
            created=time.time(),
        )
        write_json_atomic(manifest_path, asdict(manifest))
        return manifest

    def _unchanged(self, table: str, partition: str, fingerprint: str, inputs, config) -> PartitionManifest | None:
        """The partition's manifest when it already holds exactly these rows from these inputs.

        A re-run after a kill may redo a unit whose side partition (its `problems`) was finished
        before the kill: rewriting identical rows would only make a finished partition look new.
        """
        manifest = self.manifest(table, partition)
        if (manifest is None or manifest.fingerprint != fingerprint or manifest.library_version != code_version()
                or not (self.partition_dir(table, partition) / "part.parquet").is_file()):
            return None
        if manifest.inputs != jsonable(dict(inputs or {})) or manifest.config != jsonable(dict(config or {})):
            return None
        return manifest

    def delete_partition(self, table: str, partition: str) -> None:
        folder = self.partition_dir(table, partition)
        (folder / "manifest.json").unlink(missing_ok=True)
        shutil.rmtree(folder, ignore_errors=True)

    # -- reading -----------------------------------------------------------------------
    def partitions(self, table: str) -> list[str]:
        """Keys of the complete partitions of a table (those with a manifest)."""
        base = self.table_dir(table)
        if not base.is_dir():
            return []
        return sorted(
            unquote(d.name) for d in base.iterdir() if d.is_dir() and (d / "manifest.json").is_file()
        )

    def manifest(self, table: str, partition: str) -> PartitionManifest | None:
        path = self.partition_dir(table, partition) / "manifest.json"
        return PartitionManifest.from_file(path) if path.is_file() else None

    def read(
        self,
        table: str,
        *,
        partitions: Iterable[str] | None = None,
        columns: list[str] | None = None,
    ) -> pd.DataFrame:
        """Read complete partitions (all by default) into one DataFrame with the catalog schema."""
        spec = self.catalog[table]
        keys = self.partitions(table) if partitions is None else list(partitions)
        pieces = [self._read_partition(spec, key, columns) for key in keys]
        pieces = [p for p in pieces if p is not None]
        if not pieces:
            schema = spec.schema if columns is None else pa.schema([spec.schema.field(c) for c in columns])
            return schema.empty_table().to_pandas()
        return pa.concat_tables(pieces).to_pandas()

    def _read_partition(self, spec: TableSpec, key: str, columns: list[str] | None) -> pa.Table | None:
        folder = self.partition_dir(spec.name, key)
        if not (folder / "manifest.json").is_file():
            return None
        path = folder / "part.parquet"
        found = pq.read_schema(path).remove_metadata()
        if found.equals(spec.schema):
            return pq.read_table(path, columns=columns)
        older = pa.schema([f for f in spec.schema if f.name not in spec.added_columns])
        if spec.added_columns and found.equals(older):
            return _with_added_columns(spec, pq.read_table(path), columns)
        raise SchemaMismatchError(
            f"{path}: schema does not match the catalog's {spec.name!r} table.\n"
            f"  expected: {_describe(spec.schema)}\n  found:    {_describe(found)}"
        )

    # -- locking -----------------------------------------------------------------------
    def lock(self, *, wait: bool = False) -> "StoreLock":
        """An exclusive lock on the store, so two runs never write it at once.

        Taking it sweeps the temp files a killed run left (no other writer can be at work).
        """
        return StoreLock(self.root / ".lock", wait=wait, on_acquire=self.sweep_stale_temp)

    def sweep_stale_temp(self) -> int:
        """Remove the ``.tmp-*`` files and folders of interrupted writes; return how many.

        Only names made by this package's atomic writes are touched, and only inside the store.
        Call it only while holding the lock.
        """
        removed = 0
        for folder, dirs, files in os.walk(self.root):
            for name in [d for d in dirs if d.startswith(TEMP_PREFIX)]:
                shutil.rmtree(os.path.join(folder, name), ignore_errors=True)
                dirs.remove(name)
                removed += 1
            for name in files:
                if name.startswith(TEMP_PREFIX):
                    Path(folder, name).unlink(missing_ok=True)
                    removed += 1
        return removed


class StoreLock:
    """A file lock (fcntl) held for the duration of a ``with`` block."""

    def __init__(self, path: Path, *, wait: bool, on_acquire=None):
        self.path = path
        self.wait = wait
        self.on_acquire = on_acquire
        self._fh = None

    def __enter__(self) -> "StoreLock":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = open(self.path, "a+")
        flags = fcntl.LOCK_EX | (0 if self.wait else fcntl.LOCK_NB)
        try:
            fcntl.flock(self._fh, flags)
        except BlockingIOError:
            self._fh.seek(0)
            holder = self._fh.read().strip() or "another process"
            self._fh.close()
            raise StoreLockedError(
                f"the store {self.path.parent} is in use by {holder}; wait for it to finish "
                "(two runs on one store at once could corrupt it)"
            ) from None
        self._fh.seek(0)
        self._fh.truncate()
        self._fh.write(f"pid {os.getpid()} since {time.strftime('%Y-%m-%d %H:%M:%S')}")
        self._fh.flush()
        if self.on_acquire is not None:
            self.on_acquire()
        return self

    def __exit__(self, *exc) -> None:
        if self._fh is not None:
            self._fh.seek(0)
            self._fh.truncate()
            fcntl.flock(self._fh, fcntl.LOCK_UN)
            self._fh.close()
            self._fh = None


def conform(spec: TableSpec, data: pd.DataFrame | pa.Table) -> pa.Table:
    """Cast data to the catalog schema (column order included), or raise SchemaMismatchError."""
    names = set(data.column_names if isinstance(data, pa.Table) else data.columns)
    expected = set(spec.schema.names)
    if names != expected:
        missing, extra = sorted(expected - names), sorted(names - expected)
        raise SchemaMismatchError(
            f"table {spec.name!r}: columns differ from the catalog (missing: {missing}, unexpected: {extra})"
        )
    try:
        if isinstance(data, pa.Table):
            return data.select(spec.schema.names).cast(spec.schema)
        return pa.Table.from_pandas(data[list(spec.schema.names)], schema=spec.schema, preserve_index=False)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError) as err:
        raise SchemaMismatchError(f"table {spec.name!r}: values do not fit the catalog schema: {err}") from err


def _with_added_columns(spec: TableSpec, table: pa.Table, columns: list[str] | None) -> pa.Table:
    """A partition written before ``spec.added_columns`` existed, with those columns null."""
    arrays = [table.column(f.name) if f.name in table.column_names else pa.nulls(table.num_rows, f.type)
              for f in spec.schema]
    full = pa.Table.from_arrays(arrays, schema=spec.schema)
    return full.select(columns) if columns is not None else full


def jsonable(obj: Any) -> Any:
    """``obj`` as it reads back from a manifest (tuples become lists, odd types strings)."""
    return json.loads(json.dumps(obj, sort_keys=True, default=str))


def _describe(schema: pa.Schema) -> str:
    return ", ".join(f"{f.name}:{f.type}" for f in schema)
