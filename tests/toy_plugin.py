"""A toy stage and a toy specialist, registered in one place: what adding a modality takes.

The stage `brightness` writes each sampled frame's mean grey level (table `brightness`, declared
here); the specialist `brightness_nc` is a nearest-centroid classifier on a clip's mean level.
Imported by the test process, and by guarded children through ``EMONETS_PLUGINS=toy_plugin``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from emonets import registry
from emonets.bundle import Bundle, load_bundle, save_bundle
from emonets.features.extraction import StageOutput
from emonets.labels import EMOTIONS


@dataclass(frozen=True)
class BrightnessConfig:
    fps: float = 5.0

    def to_dict(self) -> dict:
        return asdict(self)


def run_brightness(unit, config: BrightnessConfig, upstream_rows=None) -> StageOutput:
    from emonets.media.video import iter_frames

    rows = [(unit.clip_ids[0], f.index, f.t, float(np.asarray(f.image, np.float32).mean()))
            for f in iter_frames(unit.paths[0], fps=config.fps, gray=True)]
    return StageOutput(pd.DataFrame(rows, columns=["clip_id", "frame", "t", "level"]))


def decode_brightness(rows: pd.DataFrame) -> np.ndarray:
    return rows["level"].to_numpy(np.float32)[:, None]


@dataclass(frozen=True)
class NearestCentroidConfig:
    temperature: float = 10.0

    def to_dict(self) -> dict:
        return asdict(self)


class NearestCentroid:
    name = "brightness_nc"

    def __init__(self, config: NearestCentroidConfig = NearestCentroidConfig()):
        self.config = config

    def fit(self, train, val=None) -> "NearestCentroid":
        levels = np.array([item.mean() for item in train.items])
        overall = levels.mean()
        self.centroids_ = np.array([levels[train.labels == k].mean() if (train.labels == k).any() else overall
                                    for k in range(len(EMOTIONS))])
        return self

    def predict_proba(self, data) -> np.ndarray:
        levels = np.array([item.mean() for item in data.items])[:, None]
        logits = -np.abs(levels - self.centroids_[None, :]) / self.config.temperature
        e = np.exp(logits - logits.max(1, keepdims=True))
        return e / e.sum(1, keepdims=True)

    def save(self, path: Path | str) -> Path:
        return save_bundle(path, Bundle(kind=self.name, config=self.config.to_dict(),
                                        arrays={"centroids": self.centroids_}))

    @classmethod
    def load(cls, path: Path | str) -> "NearestCentroid":
        bundle = load_bundle(path, kind=cls.name)
        model = cls(NearestCentroidConfig(**bundle.config))
        model.centroids_ = bundle.arrays["centroids"]
        return model


registry.register_stage(registry.StageSpec(
    name="brightness", table="brightness", needs="video", order="frame",
    config="toy_plugin:BrightnessConfig", run="toy_plugin:run_brightness", decode="toy_plugin:decode_brightness",
    schema={"clip_id": "string", "frame": "int32", "t": "float64", "level": "float32"}))
registry.register_specialist(registry.SpecialistSpec(
    name="brightness_nc", model="toy_plugin:NearestCentroid", config="toy_plugin:NearestCentroidConfig",
    reads="brightness", stages=("brightness",)))
