"""Grey spatio-temporal blocks of whole frames for the motion specialist (table `motion_blocks`).

As in EmoNets' activity model (Konda et al.'s synchrony autoencoder), a clip becomes dense
``block`` x ``block`` pixel x ``depth`` frame blocks (16 x 16 x 10 by default) cut from its
whole grey frames, sampled at ``fps`` and downscaled (area averaging) to ``frame_size``. Frames
of any aspect ratio are stretched to that one size, so every clip yields the same grid.

Blocks start every ``stride`` pixels in space (the grid is centred in the frame) and every
``time_stride`` sampled frames in time. Decoding streams: only the last ``depth`` frames are
held, so memory does not grow with the clip's length. A clip yielding more than
``max_blocks_per_clip`` blocks keeps a uniform random subset of them (reservoir sampling with a
fixed seed: deterministic, spread over the whole clip, still bounded memory).

A clip with fewer than ``depth`` sampled frames has no block: :func:`extract_motion_blocks`
returns an *empty* table (with the schema's columns) and the caller records why (see
``emonets.features.extraction.run_motion``); unreadable files raise MediaError (no video: NoVideoError).
"""

from __future__ import annotations

from collections import deque
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view
from PIL import Image

from emonets.media.video import iter_frames

COLUMNS = ("clip_id", "block", "t", "frame", "y", "x", "data", "depth", "height", "width")


@dataclass(frozen=True, kw_only=True)
class MotionConfig:
    """How clips are cut into blocks (stored with the `motion_blocks` partitions it produces)."""

    fps: float = 15.0                      # decode rate, frames per second
    frame_size: tuple[int, int] = (96, 128)  # (height, width) of the downscaled grey frame
    block: int = 16                        # block side in pixels
    depth: int = 10                        # frames per block
    stride: int = 8                        # pixels between block origins (8 = half overlap)
    time_stride: int = 5                   # sampled frames between block starts
    max_blocks_per_clip: int | None = 2000  # None keeps every block
    seed: int = 0                          # of the reservoir sampling beyond the cap

    def __post_init__(self) -> None:
        object.__setattr__(self, "frame_size", tuple(int(v) for v in self.frame_size))
        h, w = self.frame_size
        if self.fps <= 0:
            raise ValueError("fps must be positive")
        if min(self.block, self.depth, self.stride, self.time_stride) < 1:
            raise ValueError("block, depth, stride and time_stride must be >= 1")
        if h < self.block or w < self.block:
            raise ValueError(f"frame_size {self.frame_size} is smaller than one {self.block}-pixel block")
        if self.max_blocks_per_clip is not None and self.max_blocks_per_clip < 1:
            raise ValueError("max_blocks_per_clip must be >= 1 or None")

    @property
    def grid(self) -> tuple[int, int]:
        """Blocks per frame position: (rows, columns)."""
        h, w = self.frame_size
        return (h - self.block) // self.stride + 1, (w - self.block) // self.stride + 1

    def to_dict(self) -> dict:
        d = asdict(self)
        d["frame_size"] = list(self.frame_size)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "MotionConfig":
        return cls(**{**d, "frame_size": tuple(d.get("frame_size", cls().frame_size))})


def downscale(frame: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """An H x W uint8 grey frame resized to ``size`` = (height, width), area-averaged."""
    h, w = size
    if frame.shape[:2] == (h, w):
        return np.ascontiguousarray(frame, dtype=np.uint8)
    return np.asarray(Image.fromarray(frame).resize((w, h), Image.Resampling.BOX), dtype=np.uint8)


def _origins(length: int, block: int, stride: int) -> int:
    """Offset that centres the block grid along an axis of ``length`` pixels."""
    return ((length - block) % stride) // 2


def iter_block_groups(frames: Iterable[tuple[float, np.ndarray]], *, config: MotionConfig = MotionConfig()
                      ) -> Iterator[dict]:
    """Blocks of a stream of (t, grey frame) pairs, one group per block start in time.

    Holds at most ``depth`` downscaled frames. Each group is a dict: ``frame`` (index of its first
    frame), ``t`` (its time), ``y``/``x`` (block origins, (G,) int32) and ``data``
    ((G, depth, block, block) uint8), G = rows x columns of :attr:`MotionConfig.grid`.
    """
    b, s, depth = config.block, config.stride, config.depth
    h, w = config.frame_size
    oy, ox = _origins(h, b, s), _origins(w, b, s)
    rows, cols = config.grid
    ys = (oy + s * np.arange(rows, dtype=np.int32)).repeat(cols)
    xs = np.tile(ox + s * np.arange(cols, dtype=np.int32), rows)
    window: deque[tuple[int, float, np.ndarray]] = deque(maxlen=depth)
    for n, (t, frame) in enumerate(frames):
        if frame.ndim != 2:
            raise ValueError(f"expected grey H x W frames, got shape {frame.shape}")
        window.append((n, float(t), downscale(frame, config.frame_size)))
        if n + 1 < depth or (n + 1 - depth) % config.time_stride:
            continue
        volume = np.stack([f for _, _, f in window])[:, oy:, ox:]  # (depth, H', W')
        views = sliding_window_view(volume, (b, b), axis=(1, 2))[:, ::s, ::s][:, :rows, :cols]
        data = np.ascontiguousarray(views.transpose(1, 2, 0, 3, 4)).reshape(rows * cols, depth, b, b)
        yield {"frame": window[0][0], "t": window[0][1], "y": ys, "x": xs, "data": data}


class _Reservoir:
    """Keeps every block, or a uniform random subset of at most ``cap`` (Algorithm R)."""

    def __init__(self, cap: int | None, seed: int):
        self.cap, self.rng, self.seen = cap, np.random.default_rng(seed), 0
        self.parts: list[dict] = []
        self.slots: dict[str, np.ndarray] | None = None

    def add(self, group: dict) -> None:
        g = len(group["data"])
        index = np.arange(self.seen, self.seen + g, dtype=np.int64)
        meta = {"block": index, "t": np.full(g, group["t"]), "frame": np.full(g, group["frame"], np.int32),
                "y": group["y"], "x": group["x"], "data": group["data"]}
        self.seen += g
        if self.cap is None:
            self.parts.append(meta)
            return
        if self.slots is None:
            self.slots = {k: np.empty((self.cap, *v.shape[1:]), dtype=v.dtype) for k, v in meta.items()}
        fill = max(0, min(g, self.cap - int(index[0])))  # rows that go straight into free slots
        for k, v in meta.items():
            self.slots[k][index[0]: index[0] + fill] = v[:fill]
        if fill < g:
            rest = np.arange(fill, g)
            draws = self.rng.integers(0, index[rest] + 1)
            keep = draws < self.cap
            for k, v in meta.items():  # in order, so a later block wins a slot drawn twice
                for slot, row in zip(draws[keep], rest[keep]):
                    self.slots[k][slot] = v[row]

    def result(self) -> dict[str, np.ndarray] | None:
        if self.cap is None:
            return {k: np.concatenate([p[k] for p in self.parts]) for k in self.parts[0]} if self.parts else None
        if self.slots is None:
            return None
        n = min(self.seen, self.cap)
        out = {k: v[:n] for k, v in self.slots.items()}
        order = np.argsort(out["block"], kind="stable")
        return {k: v[order] for k, v in out.items()}


def motion_blocks_from_frames(frames: Iterable[tuple[float, np.ndarray]], *, clip_id: str,
                              config: MotionConfig = MotionConfig()) -> pd.DataFrame:
    """The `motion_blocks` rows of a stream of (t, grey H x W uint8 frame) pairs (see module doc)."""
    reservoir = _Reservoir(config.max_blocks_per_clip, config.seed)
    for group in iter_block_groups(frames, config=config):
        reservoir.add(group)
    kept = reservoir.result()
    if kept is None:
        return empty_table()
    n, b = len(kept["block"]), config.block
    return pd.DataFrame({
        "clip_id": [clip_id] * n,
        "block": kept["block"].astype(np.int32),
        "t": kept["t"].astype(np.float64),
        "frame": kept["frame"].astype(np.int32),
        "y": kept["y"].astype(np.int32),
        "x": kept["x"].astype(np.int32),
        "data": [row.tobytes() for row in kept["data"]],
        "depth": np.full(n, config.depth, np.int32),
        "height": np.full(n, b, np.int32),
        "width": np.full(n, b, np.int32),
    })


def extract_motion_blocks(path: Path | str, *, clip_id: str, config: MotionConfig = MotionConfig()) -> pd.DataFrame:
    """The catalog `motion_blocks` rows of one video file, decoded as a stream of grey frames.

    Returns an empty table when the clip has fewer than ``config.depth`` sampled frames. Raises
    MediaError (naming the file) when it cannot be decoded, NoVideoError without a video stream.
    """
    frames = ((f.t, f.image) for f in iter_frames(path, fps=config.fps, gray=True))
    return motion_blocks_from_frames(frames, clip_id=clip_id, config=config)


def empty_table() -> pd.DataFrame:
    """A `motion_blocks` table with no rows (a clip shorter than one block)."""
    dtypes = {"clip_id": object, "block": np.int32, "t": np.float64, "frame": np.int32, "y": np.int32,
              "x": np.int32, "data": object, "depth": np.int32, "height": np.int32, "width": np.int32}
    return pd.DataFrame({c: pd.Series([], dtype=dtypes[c]) for c in COLUMNS})


def decode_blocks(rows: pd.DataFrame) -> np.ndarray:
    """`motion_blocks` rows (all of one shape) as (N, depth, h, w) uint8, in the rows' order."""
    from emonets.features.rows import stack_bytes

    shape = (int(rows["depth"].iloc[0]), int(rows["height"].iloc[0]), int(rows["width"].iloc[0]))
    return stack_bytes(rows["data"], shape)
