"""Train one specialist on the store's tables and score every clip it can see.

Pure library: takes the `clips` table and the specialist's feature table as DataFrames,
returns the fitted model, its `predictions` rows and metrics. Which clips train what:

- every specialist fits on the labelled clips of split ``train`` and early-stops / tunes on
  split ``val`` (when present);
- face_cnn is two-stage as in the paper: its ConvNet learns from single frames (still images
  such as FER-2013 when present, else the frames of the training videos), then an RBF SVM on
  10-segment pooled frame probabilities learns from the training *videos* (skipped when there
  are none). A ready ConvNet bundle can be passed (``cnn_bundle``) to skip the first stage;
  settings beside it that act on a trained net (``tta``, ``segments``, ``svm_C``) apply to it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from emonets import training_progress as progress
from emonets.evaluation import metrics_dict
from emonets.labels import PROB_COLUMNS
from emonets.specialists.base import ClipSet, Specialist
from emonets.training_data import SPECIALIST_TABLE, frames_and_labels, split_sets, with_views

SPECIALISTS: tuple[str, ...] = ("face_cnn", "audio", "bag_of_mouths", "motion")


def check_specialist(name: str) -> str:
    """``name`` when it is a specialist; else ValueError listing them (with a close match, if any)."""
    if name in SPECIALISTS:
        return name
    import difflib

    close = difflib.get_close_matches(name, SPECIALISTS, n=1, cutoff=0.5)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise ValueError(f"unknown specialist {name!r}{hint} (choose from {', '.join(SPECIALISTS)})")


def specialist_class(name: str) -> tuple[type, type]:
    """(model class, config class) of a specialist, imported on demand."""
    if name == "face_cnn":
        from emonets.specialists.face_cnn import FaceCNN, FaceCNNConfig

        return FaceCNN, FaceCNNConfig
    if name == "audio":
        from emonets.specialists.audio import AudioConfig, AudioSpecialist

        return AudioSpecialist, AudioConfig
    if name == "bag_of_mouths":
        from emonets.specialists.bag_of_mouths import BagOfMouths, BagOfMouthsConfig

        return BagOfMouths, BagOfMouthsConfig
    if name == "motion":
        from emonets.specialists.motion import MotionSpecialist, MotionSpecialistConfig

        return MotionSpecialist, MotionSpecialistConfig
    check_specialist(name)
    raise AssertionError(name)  # pragma: no cover - check_specialist raised


def make_config(name: str, overrides: dict[str, Any] | None = None, *, max_epochs: int | None = None):
    """The specialist's config dataclass with overrides (and max_epochs where it has one)."""
    _, config_cls = specialist_class(name)
    fields = {f.name for f in dataclasses.fields(config_cls)}
    values = dict(overrides or {})
    unknown = sorted(set(values) - fields - {"cnn_bundle"})
    if unknown:
        raise ValueError(f"{name}: unknown config fields {unknown}; known: {sorted(fields)}")
    values.pop("cnn_bundle", None)
    if max_epochs is not None:
        for key in ("max_epochs", "epochs"):
            if key in fields:
                values[key] = max_epochs
    return config_cls(**values)


@dataclass
class TrainResult:
    model: Specialist
    predictions: pd.DataFrame               # the `predictions` table rows of this specialist
    metrics: dict[str, Any] = field(default_factory=dict)
    unscored: list[str] = field(default_factory=list)  # clip ids it could not score


def train_specialist(
    name: str,
    clips: pd.DataFrame,
    features: pd.DataFrame,
    *,
    config: dict[str, Any] | None = None,
    max_epochs: int | None = None,
    work_dir: Path | str | None = None,
) -> TrainResult:
    """Fit ``name`` on the train split, score every clip with features, measure on val/test."""
    model_cls, _ = specialist_class(name)
    cfg = make_config(name, config, max_epochs=max_epochs)
    with progress.training(name, **_progress_plan(name, cfg, config)):
        sets = split_sets(clips, features, name)
        train, val = sets.get("train"), sets.get("val")
        if name == "face_cnn":
            model = _fit_face_cnn(model_cls, cfg, clips, sets, dict(config or {}), work_dir)
        else:
            if train is None or not (train.labels >= 0).any():
                raise ValueError(f"{name}: no labelled training clips with features (split 'train')")
            if name == "audio":  # train on the speed-perturbed copies the mfcc stage wrote too
                table, order = SPECIALIST_TABLE[name]
                train = with_views(train, features, table, order, real_clip_ids=set(clips["clip_id"].astype(str)))
            model = model_cls(cfg).fit(_labelled(train), _labelled(val) if val is not None else None)
        progress.phase(name, "scoring clips")
        return score(model, name, clips, sets)


def _progress_plan(name: str, cfg, overrides: dict[str, Any] | None) -> dict[str, Any]:
    """How many Lightning fits ``name`` runs, and what it does before and after them."""
    if name == "face_cnn":
        return {"fits": 0 if (overrides or {}).get("cnn_bundle") else 1, "phase": "loading faces"}
    if name == "audio":
        return {"fits": len(cfg.seeds)}  # a seed ensemble: one fit per seed
    if name == "motion":
        return {"fits": 1, "phase": "whitening blocks", "then": "k-means words + chi2 SVM"}
    return {"fits": 0, "phase": "k-means dictionaries + logistic regression"}


def max_epochs_note(name: str, max_epochs: int | None, config: dict[str, Any] | None = None) -> str | None:
    """Why ``max_epochs`` changes nothing for this training, or None where it caps epochs.

    A setting silently ignored looks like one obeyed; callers show this note instead.
    """
    if max_epochs is None:
        return None
    if name == "face_cnn" and (config or {}).get("cnn_bundle"):
        return "max_epochs does not apply to face_cnn with a cnn_bundle: its ConvNet is not retrained"
    _, config_cls = specialist_class(name)
    if not {"max_epochs", "epochs"} & {f.name for f in dataclasses.fields(config_cls)}:
        return f"max_epochs does not apply to {name}: it trains without epochs"
    return None


def _labelled(cs: ClipSet | None) -> ClipSet | None:
    if cs is None:
        return None
    sub = cs.subset(cs.labels >= 0)
    return sub if len(sub) else None


def _fit_face_cnn(model_cls, cfg, clips, sets, overrides, work_dir):
    cnn_bundle = overrides.pop("cnn_bundle", None)
    is_image = set(clips.loc[clips["media"] == "image", "clip_id"])

    def part(split: str, images: bool) -> ClipSet | None:
        cs = sets.get(split)
        if cs is None:
            return None
        return _labelled(cs.subset(np.array([(c in is_image) == images for c in cs.clip_ids], bool)))

    if cnn_bundle:
        model = model_cls.load(cnn_bundle).with_settings(overrides)  # e.g. {"tta": "affine"} beside it
    else:
        source = part("train", True) or part("train", False)
        if source is None:
            raise ValueError("face_cnn: no labelled training faces (images or video frames)")
        frames, labels = frames_and_labels(source)
        val_source = part("val", True) or part("val", False)
        val_frames, val_labels = frames_and_labels(val_source) if val_source else (None, None)
        model = model_cls(cfg).fit_frames(frames, labels, val_frames, val_labels, work_dir=work_dir)
    videos = part("train", False)
    if videos is not None and len(set(videos.labels)) > 1:
        progress.phase("face_cnn", "SVM on the training videos' segments")
        model.fit(videos, part("val", False))
    return model


def score(model: Specialist, name: str, clips: pd.DataFrame, sets: dict[str, ClipSet]) -> TrainResult:
    """Predict every clip that has features; metrics per split on the labelled ones."""
    frames, metrics = [], {}
    for split, cs in sets.items():
        if len(cs) == 0:
            continue
        probs = np.asarray(model.predict_proba(cs), dtype=np.float32)
        rows = pd.DataFrame(probs, columns=list(PROB_COLUMNS))
        rows.insert(0, "clip_id", cs.clip_ids)
        rows.insert(1, "specialist", name)
        rows.insert(2, "split", split)
        labels = clips.set_index("clip_id").loc[cs.clip_ids, "label"].to_numpy()
        rows.insert(3, "label", labels)
        frames.append(rows)
        known = cs.labels >= 0
        if known.any():
            metrics[split] = metrics_dict(cs.labels[known], probs[known].argmax(1))
    predictions = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(
        columns=["clip_id", "specialist", "split", "label", *PROB_COLUMNS])
    scored = set(predictions["clip_id"])
    unscored = [c for c in clips["clip_id"] if c not in scored]
    return TrainResult(model, predictions, metrics, unscored)


__all__ = ["SPECIALISTS", "TrainResult", "check_specialist", "make_config", "max_epochs_note", "score",
           "specialist_class", "train_specialist"]
