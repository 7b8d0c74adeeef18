"""Per-clip intermediates a specialist computes from a clip's features with a fixed representation
(the face ConvNet's frame probabilities, the motion autoencoder's bag of words), kept between runs
so that after one added clip only that clip goes through the network again.

A value is a pure function of (the representation, the clip's features), so the cache is keyed by
both: ``model_key`` is a digest of the representation's weights and settings (``digest``), the
clip's key its content fingerprint (emonets.retraining.content_fingerprints: the clip's bytes and
the config and version of its feature partition). A changed clip or a retrained net gets a new key
and a miss; nothing is ever invalidated by hand. Entries go to ``ROOT/MODEL_KEY/*.npz``, one
segment per flush, written atomically: a crash loses at most the unflushed entries.
"""

from __future__ import annotations

import hashlib
import io
import uuid
from collections import OrderedDict
from pathlib import Path
from typing import Protocol

import numpy as np

from data_catalog.atomic import write_bytes_atomic


class ClipCache(Protocol):
    """What a specialist asks of a cache (a test may pass a dict-backed fake)."""

    def get(self, model_key: str, clip_id: str) -> np.ndarray | None: ...

    def put(self, model_key: str, clip_id: str, value: np.ndarray) -> None: ...

    def flush(self) -> None: ...


def digest(*parts) -> str:
    """A short stable digest of arrays, tensors, dicts of them and plain values (a representation's
    weights and settings)."""
    h = hashlib.sha256()

    def feed(x) -> None:
        if isinstance(x, dict):
            for k in sorted(x):
                h.update(str(k).encode())
                feed(x[k])
        elif isinstance(x, (list, tuple)):
            h.update(b"[")
            for v in x:
                feed(v)
            h.update(b"]")
        elif hasattr(x, "detach"):  # a torch tensor
            feed(x.detach().cpu().contiguous().numpy())
        elif isinstance(x, np.ndarray):
            h.update(str((x.dtype, x.shape)).encode())
            h.update(np.ascontiguousarray(x).tobytes())
        else:
            h.update(repr(x).encode())

    for p in parts:
        feed(p)
    return h.hexdigest()[:20]


class FolderClipCache:
    """A ClipCache in a folder, for the clips whose content fingerprints it is given.

    ``fingerprints`` maps clip id -> content fingerprint; a clip without one is never cached (a
    clip the run knows nothing about, e.g. a speed-perturbed training view). Hits, misses and
    writes are counted for the training summary.

    Memory stays bounded: a representation's segments are indexed by reading their keys only, and
    a segment's values are loaded when one of its clips is asked for, keeping at most
    ``max_loaded_bytes`` of loaded segments (least recently used dropped first). Per-frame codes of
    thousands of clips (bag of mouths: 3,200 numbers a frame) never sit in memory all at once.
    """

    def __init__(self, root: Path | str, fingerprints: dict[str, str], *, max_loaded_bytes: int = 256 << 20):
        self.root = Path(root)
        self.fingerprints = dict(fingerprints)
        self.max_loaded_bytes = int(max_loaded_bytes)
        self._index: dict[str, dict[str, Path]] = {}          # model key -> fingerprint -> segment
        self._segments: OrderedDict[Path, dict[str, np.ndarray]] = OrderedDict()  # loaded, LRU order
        self._loaded_bytes = 0
        self._pending: dict[str, dict[str, np.ndarray]] = {}
        self.hits = self.misses = self.written = 0

    def _segment_index(self, model_key: str) -> dict[str, Path]:
        if model_key not in self._index:
            index: dict[str, Path] = {}
            for segment in sorted((self.root / model_key).glob("*.npz")):
                try:
                    with np.load(segment, allow_pickle=False) as npz:
                        keys = npz["keys"]  # only this member is read
                except (OSError, ValueError, KeyError, EOFError):  # unreadable: its clips are recomputed
                    continue
                index.update((str(k), segment) for k in keys)
            self._index[model_key] = index
        return self._index[model_key]

    def _segment(self, path: Path) -> dict[str, np.ndarray] | None:
        if path in self._segments:
            self._segments.move_to_end(path)
            return self._segments[path]
        try:
            entries = _read_segment(path)
        except (OSError, ValueError, KeyError, EOFError):
            return None
        self._segments[path] = entries
        self._loaded_bytes += _nbytes(entries)
        while len(self._segments) > 1 and self._loaded_bytes > self.max_loaded_bytes:
            _, dropped = self._segments.popitem(last=False)
            self._loaded_bytes -= _nbytes(dropped)
        return entries

    def get(self, model_key: str, clip_id: str) -> np.ndarray | None:
        key = self.fingerprints.get(clip_id)
        if key is None:
            return None
        value = self._pending.get(model_key, {}).get(key)
        if value is None:
            index = self._segment_index(model_key)
            path = index.get(key)
            entries = self._segment(path) if path is not None else None
            if path is not None and entries is None:  # unreadable: its clips are recomputed, never re-read
                for k in [k for k, p in index.items() if p == path]:
                    del index[k]
            value = None if entries is None else entries.get(key)
        self.hits += value is not None
        self.misses += value is None
        return value

    def put(self, model_key: str, clip_id: str, value: np.ndarray) -> None:
        key = self.fingerprints.get(clip_id)
        if key is None:
            return
        self._segment_index(model_key)  # the representation counts as in use (prune)
        self._pending.setdefault(model_key, {})[key] = np.asarray(value)

    def flush(self) -> None:
        """Write the entries put since the last flush, one new segment per representation."""
        for model_key, entries in self._pending.items():
            if not entries:
                continue
            buffer = io.BytesIO()
            np.savez(buffer, **_packed(entries))
            folder = self.root / model_key
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / f"{uuid.uuid4().hex}.npz"
            write_bytes_atomic(path, buffer.getvalue())
            self._segment_index(model_key).update((k, path) for k in entries)
            self.written += len(entries)
        self._pending = {}

    def prune(self) -> int:
        """Remove the entries of every representation this cache was not asked about (a replaced
        network's); call it once the model that asked is saved. Returns the folders removed."""
        import shutil

        if not self._index or not self.root.is_dir():
            return 0
        stale = [p for p in self.root.iterdir() if p.is_dir() and p.name not in self._index]
        for folder in stale:
            shutil.rmtree(folder, ignore_errors=True)
        return len(stale)

    def counts(self) -> dict[str, int]:
        return {"hits": self.hits, "misses": self.misses, "written": self.written}


def _nbytes(entries: dict[str, np.ndarray]) -> int:
    return sum(v.nbytes for v in entries.values())


def _packed(entries: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """One segment's entries as four arrays (a zip member per clip would be slow for 30,000 images)."""
    keys = sorted(entries)
    values = [np.asarray(entries[k]) for k in keys]
    ndim = max(v.ndim for v in values)
    shapes = np.array([(*v.shape, *([1] * (ndim - v.ndim))) for v in values], dtype=np.int64).reshape(len(keys), ndim)
    return {"keys": np.array(keys), "shapes": shapes, "ndims": np.array([v.ndim for v in values], np.int64),
            "data": np.concatenate([v.ravel() for v in values]) if values else np.zeros(0)}


def _read_segment(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as npz:
        keys, shapes, ndims, data = npz["keys"], npz["shapes"], npz["ndims"], npz["data"]
    sizes = shapes.prod(axis=1)
    ends = np.cumsum(sizes)
    if len(keys) != len(shapes) or (len(ends) and ends[-1] != len(data)):
        raise ValueError(f"{path}: inconsistent cache segment")
    return {str(k): data[end - size:end].reshape(tuple(shape[:nd]))
            for k, shape, nd, size, end in zip(keys, shapes, ndims, sizes, ends)}


def cached_per_clip(cache: ClipCache | None, model_key: str, clip_ids: list[str], compute) -> list[np.ndarray]:
    """Each clip's intermediate: from ``cache`` when it holds one, else ``compute(indices)`` (one
    call for all the misses, returning their values in order), which are then stored."""
    out: list[np.ndarray | None] = [None] * len(clip_ids)
    if cache is not None:
        for i, clip_id in enumerate(clip_ids):
            out[i] = cache.get(model_key, clip_id)
    missing = [i for i, v in enumerate(out) if v is None]
    if missing:
        for i, value in zip(missing, compute(missing)):
            out[i] = value
            if cache is not None:
                cache.put(model_key, clip_ids[i], value)
        if cache is not None:
            cache.flush()
    return out
