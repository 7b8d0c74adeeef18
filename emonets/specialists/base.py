"""The contract every specialist follows (scikit-learn style).

``__init__`` stores parameters only; ``fit`` returns ``self``; learned state ends in ``_``;
``predict_proba`` returns an (n_clips, 7) float array over ``emonets.labels.EMOTIONS``;
``save(path)`` writes a versioned bundle (emonets.bundle) and ``load(path)`` reads it back,
giving identical predictions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import numpy as np

from emonets.labels import EMOTIONS

N_CLASSES = len(EMOTIONS)


@dataclass
class ClipSet:
    """Per-clip inputs of one specialist.

    ``items[i]`` holds clip i's per-frame (or per-block) inputs as one array whose first axis is
    time; ``labels[i]`` is the class index (``emonets.labels.LABEL_INDEX``), or -1 if unknown.
    """

    clip_ids: list[str]
    items: list[np.ndarray]
    labels: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    def __post_init__(self) -> None:
        if len(self.clip_ids) != len(self.items):
            raise ValueError("clip_ids and items differ in length")
        if self.labels.size == 0:
            self.labels = np.full(len(self.clip_ids), -1, dtype=np.int64)
        if len(self.labels) != len(self.clip_ids):
            raise ValueError("labels and clip_ids differ in length")

    def __len__(self) -> int:
        return len(self.clip_ids)

    def subset(self, mask: np.ndarray) -> "ClipSet":
        idx = np.flatnonzero(mask)
        return ClipSet([self.clip_ids[i] for i in idx], [self.items[i] for i in idx], self.labels[idx])


def labelled(cs: ClipSet | None) -> ClipSet | None:
    """The clips of ``cs`` with a known label, or None when there are none."""
    if cs is None:
        return None
    sub = cs.subset(cs.labels >= 0)
    return sub if len(sub) else None


class Specialist:
    """Base class: shared helpers only; each specialist implements fit/predict_proba/save/load."""

    name: ClassVar[str] = "specialist"
    # Per-clip intermediates kept between runs (emonets.clip_cache), set by the training task; a
    # specialist that has a fixed representation consults it, the others ignore it.
    clip_cache = None

    def fit(self, train: ClipSet, val: ClipSet | None = None) -> "Specialist":  # pragma: no cover
        raise NotImplementedError

    def predict_proba(self, data: ClipSet) -> np.ndarray:  # pragma: no cover
        raise NotImplementedError

    def save(self, path: Path | str) -> Path:  # pragma: no cover
        raise NotImplementedError

    @classmethod
    def load(cls, path: Path | str) -> "Specialist":  # pragma: no cover
        raise NotImplementedError
