"""Temporal pooling of per-frame class probabilities into a fixed-length clip vector.

EmoNets' face model averaged its frame probabilities over 10 equal time segments and
concatenated them (10 x 7 = 70-d) for an SVM. Clips shorter than 10 frames are stretched:
each segment takes the frame nearest its centre, so every clip gives the same length.
"""

from __future__ import annotations

import numpy as np


def segment_pool(frame_probs: np.ndarray, *, segments: int = 10) -> np.ndarray:
    """(T, C) frame probabilities -> (segments * C,) vector of per-segment means.

    T >= segments: segment k averages frames [floor(kT/S), floor((k+1)T/S)).
    0 < T < segments: the clip is stretched (segment k takes frame floor((k + 0.5) T / S)).
    """
    probs = np.asarray(frame_probs, dtype=np.float64)
    if probs.ndim != 2 or len(probs) == 0:
        raise ValueError(f"need (T, C) probabilities with T >= 1, got shape {probs.shape}")
    t = len(probs)
    if t < segments:
        idx = np.floor((np.arange(segments) + 0.5) * t / segments).astype(int)
        return probs[idx].reshape(-1).astype(np.float32)
    edges = np.floor(np.arange(segments + 1) * t / segments).astype(int)
    sums = np.add.reduceat(probs, edges[:-1], axis=0)
    return (sums / np.diff(edges)[:, None]).reshape(-1).astype(np.float32)
