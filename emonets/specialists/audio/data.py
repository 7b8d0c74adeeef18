"""Clip batches for the audio specialist: normalisation, train-time augmentation, padding.

Augmentation works on the normalised MFCC frames (the specialist never sees audio): a random
tempo change (linear resampling of the frame sequence), a random crop, time masks set to the
training mean, and Gaussian noise. Each is cheap and keeps the clip's label.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset


@dataclass(frozen=True, kw_only=True)
class Augment:
    tempo: float = 0.0  # factor drawn from [1 - tempo, 1 + tempo]
    crop_min: float = 1.0  # keep a random contiguous span of at least this fraction
    time_masks: int = 0  # how many spans are blanked
    mask_frames: int = 0  # maximum width of one span (frames)
    noise: float = 0.0  # std of Gaussian noise on the normalised features
    max_frames: int = 0  # random crop to at most this many frames (0: no cap), for speed


def utterance_centre(x: np.ndarray, columns: int) -> np.ndarray:
    """Subtract the clip's own mean from the first ``columns`` features (0 = none)."""
    if columns <= 0 or len(x) == 0:
        return x
    x = x.copy()
    x[:, :columns] -= x[:, :columns].mean(axis=0, keepdims=True)
    return x


def fit_normaliser(items: list[np.ndarray], centre_columns: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature mean and std over all frames of the training clips (each utterance-centred
    first, see :func:`utterance_centre`; std floored at 1e-6). Two passes, one clip at a time:
    a float64 copy of every frame at once grows with the training set."""
    total, count = None, 0
    for x in items:
        if len(x):
            x = utterance_centre(x, centre_columns).astype(np.float64)
            total = x.sum(axis=0) if total is None else total + x.sum(axis=0)
            count += len(x)
    if total is None:
        raise ValueError("no frames to fit the normaliser on")
    mean = total / count
    squares = sum(((utterance_centre(x, centre_columns).astype(np.float64) - mean) ** 2).sum(axis=0)
                  for x in items if len(x))
    std = np.maximum(np.sqrt(squares / count), 1e-6)
    return mean.astype(np.float32), std.astype(np.float32)


def augment(x: np.ndarray, aug: Augment, rng: np.random.Generator) -> np.ndarray:
    """One random training view of a normalised (T, D) clip."""
    t = len(x)
    if aug.tempo > 0 and t > 1:
        factor = rng.uniform(1 - aug.tempo, 1 + aug.tempo)
        new_t = max(1, int(round(t / factor)))
        src = np.linspace(0, t - 1, new_t)
        lo = np.floor(src).astype(int)
        hi = np.minimum(lo + 1, t - 1)
        frac = (src - lo)[:, None].astype(np.float32)
        x = x[lo] * (1 - frac) + x[hi] * frac
        t = new_t
    keep = t
    if aug.crop_min < 1.0:
        keep = max(1, int(round(t * rng.uniform(aug.crop_min, 1.0))))
    if aug.max_frames:
        keep = min(keep, aug.max_frames)
    if keep < t:
        start = int(rng.integers(0, t - keep + 1))
        x = x[start:start + keep]
        t = keep
    if aug.time_masks and aug.mask_frames:
        x = x.copy()
        for _ in range(aug.time_masks):
            width = int(rng.integers(0, aug.mask_frames + 1))
            if 0 < width < t:
                start = int(rng.integers(0, t - width + 1))
                x[start:start + width] = 0.0
    if aug.noise > 0:
        x = x + rng.normal(0.0, aug.noise, size=x.shape).astype(np.float32)
    return np.ascontiguousarray(x, dtype=np.float32)


class ClipFrames(Dataset):
    """Normalised clips (and labels); a fresh random view per access when ``aug`` is given."""

    def __init__(self, items: list[np.ndarray], labels: np.ndarray, *, aug: Augment | None = None,
                 seed: int = 0):
        self.items = items
        self.labels = np.asarray(labels, dtype=np.int64)
        self.aug = aug
        self.rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> tuple[np.ndarray, int]:
        x = self.items[i]
        if self.aug is not None:
            x = augment(x, self.aug, self.rng)
        return x, int(self.labels[i])


def collate(batch: list[tuple[np.ndarray, int]]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Zero-pad clips to the batch's longest: x (B, D, T), lengths (B,), labels (B,)."""
    lengths = torch.tensor([max(1, len(x)) for x, _ in batch], dtype=torch.long)
    d = batch[0][0].shape[1]
    out = torch.zeros(len(batch), d, int(lengths.max()), dtype=torch.float32)
    for i, (x, _) in enumerate(batch):
        if len(x):
            out[i, :, : len(x)] = torch.from_numpy(x).T
    labels = torch.tensor([y for _, y in batch], dtype=torch.long)
    return out, lengths, labels
