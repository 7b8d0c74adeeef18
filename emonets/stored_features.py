"""A specialist's feature table read from the store in bounded batches of partitions.

Training must not hold a feature table's rows as Python objects (the motion blocks of 928 clips
were 4.7 GB of ``bytes`` before being decoded into a second copy). Reading here goes a batch of
partitions at a time (at most ``batch_bytes`` of Parquet), decodes the batch to one array per clip
and drops the rows, so what stays is the decoded arrays. A stage whose arrays are themselves too
large to keep for every clip (``StageSpec.lazy_items``: motion blocks, ~5 MB a clip) keeps a
:class:`StoredClip` per clip instead: its length and row shape, its array read from its
partition each time it is used.
"""

from __future__ import annotations

from typing import Callable, Iterator

import numpy as np
import pandas as pd

from data_catalog import Store
from emonets import registry
from emonets.features.rows import clip_array, decode_rows, usable_rows

BATCH_BYTES = 64 * 1024 * 1024  # Parquet bytes read at once (decoded arrays are a few times more)


class StoredClip:
    """One clip's usable rows of a feature table, read from its partition when used.

    ``len()`` and ``shape`` need no read; ``np.asarray(clip)`` (or :meth:`load`) reads and decodes.
    """

    def __init__(self, store: Store, table: str, partition: str, clip_id: str, length: int,
                 row_shape: tuple[int, ...]):
        self.store, self.table, self.partition, self.clip_id = store, table, partition, clip_id
        self.length, self.row_shape = int(length), tuple(row_shape)

    def __len__(self) -> int:
        return self.length

    @property
    def shape(self) -> tuple[int, ...]:
        return (self.length, *self.row_shape)

    @property
    def ndim(self) -> int:
        return 1 + len(self.row_shape)

    def load(self) -> np.ndarray:
        rows = self.store.read(self.table, partitions=[self.partition])
        data = clip_array(self.table, rows[rows["clip_id"] == self.clip_id])
        if len(data) != self.length:
            raise RuntimeError(f"{self.table}/{self.partition}: clip {self.clip_id} now has {len(data)} rows, "
                               f"{self.length} when training started (the store changed under the run)")
        return data

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        data = self.load()
        return data if dtype is None else data.astype(dtype, copy=False)

    def __repr__(self) -> str:
        return f"StoredClip({self.table}/{self.partition}:{self.clip_id}, shape={self.shape})"


class StoredFeatures:
    """The given partitions of one feature table, as arrays (or StoredClips) per clip id."""

    def __init__(self, store: Store, table: str, partitions: list[str], *, lazy: bool | None = None,
                 batch_bytes: int = BATCH_BYTES, keep: Callable[[str], bool] | None = None):
        """``keep(clip_id)``: which clip ids to hold (default all), e.g. no augmented copies of
        clips that are never trained on."""
        self.store, self.table, self.partitions = store, table, list(partitions)
        self.keep = keep
        self.order = registry.stage_of_table(table).order
        self.lazy = registry.stage_of_table(table).lazy_items if lazy is None else lazy
        self.batch_bytes = batch_bytes
        self._by_clip: dict[str, np.ndarray | StoredClip] | None = None

    def per_clip(self) -> dict[str, np.ndarray | StoredClip]:
        """Every clip id the partitions hold (augmented copies included) -> its usable rows in order;
        clips without a usable row are left out. Read once, then kept."""
        if self._by_clip is None:
            out: dict[str, np.ndarray | StoredClip] = {}
            if self.lazy:  # a lazy table's partitions are large: one at a time, so each clip knows its own
                for key in self.partitions:
                    out.update(self._lazy_clips(key, self._kept(self.store.read(self.table, partitions=[key]))))
            else:
                for keys in self._batches():
                    rows = self._kept(self.store.read(self.table, partitions=keys))
                    out.update(arrays_by_clip(self.table, self.order, rows))
            self._by_clip = out
        return self._by_clip

    def _kept(self, rows: pd.DataFrame) -> pd.DataFrame:
        return rows if self.keep is None else rows[rows["clip_id"].map(self.keep).astype(bool)]

    def _batches(self) -> Iterator[list[str]]:
        batch, size = [], 0
        for key in self.partitions:
            part = self.store.partition_dir(self.table, key) / "part.parquet"
            nbytes = part.stat().st_size if part.is_file() else 0
            if batch and size + nbytes > self.batch_bytes:
                yield batch
                batch, size = [], 0
            batch.append(key)
            size += nbytes
        if batch:
            yield batch

    def _lazy_clips(self, partition: str, rows: pd.DataFrame) -> dict[str, StoredClip]:
        rows = usable_rows(self.table, rows)
        out = {}
        for clip_id, group in rows.groupby("clip_id", sort=False):
            row_shape = decode_rows(self.table, group.head(1)).shape[1:]
            out[clip_id] = StoredClip(self.store, self.table, partition, clip_id, len(group), row_shape)
        return out


def arrays_by_clip(table: str, order: str, rows: pd.DataFrame, *, decode=decode_rows) -> dict[str, np.ndarray]:
    """Clip id -> its usable rows of ``table`` decoded to one array, in ``order``. Decoding is
    vectorised over all rows and then cut at clip borders (~32k one-frame FER clips in well
    under a second, not a pandas groupby each)."""
    rows = usable_rows(table, rows).sort_values(["clip_id", order], kind="stable")
    data = decode(table, rows)
    ids = rows["clip_id"].to_numpy()
    if len(ids) == 0:
        return {}
    starts = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]])
    ends = np.r_[starts[1:], len(ids)]
    return {ids[s]: data[s:e] for s, e in zip(starts, ends)}
