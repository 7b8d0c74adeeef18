"""Per-clip feature extraction: which stages apply to a clip, and the library call for each.

A *work unit* is what one extraction task handles: one video/audio clip, or a batch of still
images (FER-2013 has ~32k; a task each would drown the orchestrator), keyed by a partition name
and fingerprinted by the sha256 of its files. The stages are entries of
:mod:`emonets.registry`; the built-in ones' unit functions are here: faces (video frames or
images -> aligned grey faces), mouths (faces -> mouth patches), mfcc (audio -> MFCC + deltas),
motion (video -> grey motion blocks).
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from emonets import registry


@dataclass(frozen=True)
class WorkUnit:
    """One extraction task's input: a clip, or a batch of images sharing a partition."""

    key: str                  # partition name in every feature table
    clip_ids: tuple[str, ...]
    paths: tuple[str, ...]
    media: str                # video | audio | image
    sha256: str               # the clip's sha256, or a hash over a batch's image hashes
    has_audio: bool = False
    has_video: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "WorkUnit":
        return cls(**{**d, "clip_ids": tuple(d["clip_ids"]), "paths": tuple(d["paths"])})

    def can_run(self, stage: str) -> bool:
        need = registry.stage(stage).needs
        if need == "face_source":
            return self.media == "image" or self.has_video
        if need == "audio":
            return self.media != "image" and self.has_audio
        return self.media == "video" and self.has_video


@dataclass
class StageOutput:
    """A stage's table for one unit, and the per-clip problems it met."""

    table: pd.DataFrame
    problems: list[dict] = field(default_factory=list)
    stats: dict[str, Any] = field(default_factory=dict)


def work_units(clips: pd.DataFrame, *, image_batch: int = 2000) -> list[WorkUnit]:
    """Group the `clips` table into work units: a unit per clip, images batched per split+label.

    A unit's paths are what the stages open, made from ``clips.path_bytes`` (the exact bytes of
    the name) by emonets.media.paths.portable_path: the plain path when it is UTF-8, else a ``file://``
    URI that every opener decodes. Either way the unit is valid UTF-8 (a Prefect parameter,
    pickled to workers, and written into `problems` rows). ``clips.path`` is display text and
    is used only for rows of a table written before path_bytes existed (then it was the path).
    """
    from emonets.media.paths import portable_path

    def fs_path(raw: Any, shown: str) -> str:
        return portable_path(bytes(raw)) if isinstance(raw, (bytes, bytearray, memoryview)) else shown

    raw = clips["path_bytes"] if "path_bytes" in clips.columns else [None] * len(clips)
    clips = clips.assign(unit_path=[fs_path(r, p) for r, p in zip(raw, clips["path"])])
    units: list[WorkUnit] = []
    media_clips = clips[clips["media"] != "image"]
    for row in media_clips.itertuples(index=False):
        units.append(WorkUnit(row.clip_id, (row.clip_id,), (row.unit_path,), row.media, row.sha256,
                              bool(row.has_audio), bool(row.has_video)))
    images = clips[clips["media"] == "image"].sort_values("clip_id")
    for (dataset, split, label), group in images.groupby(["dataset", "split", "label"], sort=True):
        for start in range(0, len(group), image_batch):
            part = group.iloc[start : start + image_batch]
            digest = hashlib.sha256("".join(part["sha256"]).encode()).hexdigest()
            key = f"{dataset}-{split}-{label or 'unlabelled'}-{start // image_batch:03d}"
            units.append(WorkUnit(key, tuple(part["clip_id"]), tuple(part["unit_path"]), "image", digest))
    return units


def default_config(stage: str) -> Any:
    """A stage's default config object (imports only that stage's config module)."""
    return registry.stage(stage).default_config()


def config_from_dict(stage: str, data: dict[str, Any] | None) -> Any:
    """Rebuild a stage's config dataclass from its dict form (unknown keys are an error)."""
    default = default_config(stage)
    if not data:
        return default
    fields = {}
    for key, value in data.items():
        current = getattr(default, key)
        fields[key] = tuple(value) if isinstance(current, tuple) and isinstance(value, list) else value
    return replace(default, **fields)  # keys not given keep the stage's default


def _problem(clip_id: str, path: str, stage: str, reason: str) -> dict:
    return {"clip_id": clip_id, "path": path, "stage": stage, "reason": reason}


def run_faces(unit: WorkUnit, config: Any, upstream_rows: None = None) -> StageOutput:
    """Aligned faces of the clip's main face track, or of each image in a batch."""
    from emonets.features.faces import extract_faces, faces_from_images
    from emonets.media.images import load_grey_image, pixels_to_image

    if unit.media == "image":
        images, kept, problems = [], [], []
        for clip_id, path in zip(unit.clip_ids, unit.paths):
            try:
                images.append(_load_image(path, load_grey_image, pixels_to_image))
                kept.append(clip_id)
            except Exception as err:  # one bad image must not sink its batch
                problems.append(_problem(clip_id, path, "faces", str(err)))
        stack = np.stack(images) if images else np.zeros((0, 48, 48), np.uint8)
        result = faces_from_images(stack, kept, config=config)
        return StageOutput(result.faces, problems, result.stats)
    clip_id, path = unit.clip_ids[0], unit.paths[0]
    result = extract_faces(path, clip_id=clip_id, config=config)
    problems = []
    if len(result.faces) == 0 or not result.faces["found"].any():
        problems.append(_problem(clip_id, path, "faces", "no face found in any sampled frame"))
    truncated = _truncation(path, result.faces) if config.max_frames is None else None
    if truncated:
        problems.append(_problem(clip_id, path, "faces", truncated))
    return StageOutput(result.faces, problems, result.stats)


def _truncation(path: str, faces: pd.DataFrame) -> str | None:
    """A note when the frames stop well before the length the file's index declares (a file
    cut short after an index written at its start); what decoded is still used, as players do."""
    from emonets.media.video import declared_video_seconds

    if len(faces) == 0:
        return None
    declared, decoded = declared_video_seconds(path), float(faces["t"].max())
    if declared > 0 and declared - decoded > max(0.5, 0.1 * declared):
        return f"truncated: frames end at {decoded:.1f} s of the {declared:.1f} s its index declares"
    return None


def _load_image(path: str, load_grey_image, pixels_to_image) -> np.ndarray:
    from emonets.media.paths import to_fs

    path = to_fs(path)  # the row's CSV may have a name that is not UTF-8
    if "#" in path and not Path(path).exists():  # a row of fer2013.csv
        import csv

        csv_path, row_no = path.rsplit("#", 1)
        with open(csv_path, newline="") as fh:
            for i, row in enumerate(csv.DictReader(fh)):
                if i == int(row_no):
                    return pixels_to_image(row["pixels"])
        raise ValueError(f"{path}: row not found")
    return load_grey_image(path, size=48)


def run_mouths(unit: WorkUnit, config: Any, faces: pd.DataFrame) -> StageOutput:
    """Mouth patches cut from a unit's aligned faces (its `faces` partition; no video decoding)."""
    from emonets.features.mouths import mouths_from_faces

    return StageOutput(mouths_from_faces(faces, config=config))


def run_mfcc(unit: WorkUnit, config: Any, upstream_rows: None = None) -> StageOutput:
    from emonets.features.mfcc import extract_mfcc

    return StageOutput(extract_mfcc(unit.paths[0], clip_id=unit.clip_ids[0], config=config))


def run_motion(unit: WorkUnit, config: Any, upstream_rows: None = None) -> StageOutput:
    from emonets.features.motion_blocks import extract_motion_blocks

    table = extract_motion_blocks(unit.paths[0], clip_id=unit.clip_ids[0], config=config)
    problems = []
    if len(table) == 0:
        problems.append(_problem(unit.clip_ids[0], unit.paths[0], "motion",
                                 "clip is shorter than one motion block"))
    return StageOutput(table, problems)
