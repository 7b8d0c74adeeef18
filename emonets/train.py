"""Train one specialist on the store's tables and score every clip it can see.

Pure library: takes the `clips` table and the specialist's feature table as DataFrames,
returns the fitted model, its `predictions` rows and metrics. Which clips train what:

- every specialist fits on the labelled clips of split ``train`` and early-stops / tunes on
  split ``val`` (when present);
- a specialist with its own fit hook in :mod:`emonets.registry` trains its own way (face_cnn's
  two stages: :mod:`emonets.specialists.face_cnn.fit`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from emonets import registry
from emonets import training_progress as progress
from emonets.evaluation import metrics_dict
from emonets.labels import PROB_COLUMNS
from emonets.specialists.base import ClipSet, Specialist, labelled
from emonets.stored_features import StoredFeatures
from emonets.training_data import split_sets, with_views


def check_specialist(name: str) -> str:
    """``name`` when it is a specialist; else ValueError listing them (with a close match, if any)."""
    return registry.specialist(name).name


def make_config(name: str, overrides: dict[str, Any] | None = None, *, max_epochs: int | None = None):
    """The specialist's config dataclass with overrides (and max_epochs where it has one)."""
    spec = registry.specialist(name)
    config_cls = spec.config_class()
    fields = registry.config_fields(spec)
    values = dict(overrides or {})
    extra = {spec.pretrained_key} - {None}  # a setting of the training, not of the model
    unknown = sorted(set(values) - fields - extra)
    if unknown:
        raise ValueError(f"{name}: unknown config fields {unknown}; known: {sorted(fields)}")
    for key in extra:
        values.pop(key, None)
    if max_epochs is not None:
        for key in ("max_epochs", "epochs"):
            if key in fields:
                values[key] = max_epochs
    return config_cls(**values)


@dataclass
class FittedSpecialist:
    model: Specialist
    predictions: pd.DataFrame               # the `predictions` table rows of this specialist
    metrics: dict[str, Any] = field(default_factory=dict)
    unscored: list[str] = field(default_factory=list)  # clip ids it could not score
    warm_start: str | None = None   # what continued from the previous model; None: trained from scratch


@dataclass
class TrainingRequest:
    """What a specialist's own fit hook gets (see ``SpecialistSpec.fit``)."""

    model_cls: type
    config: Any                     # the config dataclass, overrides applied
    overrides: dict[str, Any]       # the overrides as given (settings beside the config fields too)
    clips: pd.DataFrame
    sets: dict[str, ClipSet]        # split -> the specialist's ClipSet
    work_dir: Path | str | None
    warm_from: Specialist | None = None  # the previous model, when the run may continue from it
    clip_cache: Any = None               # emonets.clip_cache.ClipCache for per-clip intermediates


def fit_specialist(
    name: str,
    clips: pd.DataFrame,
    features: pd.DataFrame | StoredFeatures,
    *,
    config: dict[str, Any] | None = None,
    max_epochs: int | None = None,
    work_dir: Path | str | None = None,
    warm_from: Specialist | None = None,
    clip_cache: Any = None,
) -> FittedSpecialist:
    """Fit ``name`` on the train split, score every clip with features, measure on val/test.

    ``features``: the specialist's feature table as rows, or (bounded memory) as the store's
    partitions of it. ``warm_from``: the previous model of the same config, to continue from
    where the specialist can (its ``fit_warm``, or its fit hook's own use of it); the cheap heads
    always re-fit. ``clip_cache``: where per-clip intermediates are kept (emonets.clip_cache).
    """
    spec = registry.specialist(name)
    cfg = make_config(name, config, max_epochs=max_epochs)
    with progress.training(name, **spec.plan(cfg, dict(config or {}))):
        sets = split_sets(clips, features, name)
        if spec.fit is not None:
            request = TrainingRequest(spec.model_class(), cfg, dict(config or {}), clips, sets, work_dir,
                                      warm_from, clip_cache)
            model = registry.resolve(spec.fit)(request)
        else:
            model = _fit(spec, cfg, clips, features, sets, warm_from, clip_cache)
        progress.phase(name, "scoring clips")
        fitted = score(model, name, clips, sets)
        fitted.warm_start = getattr(model, "warm_start_", None)
        return fitted


def _fit(spec: registry.SpecialistSpec, cfg: Any, clips: pd.DataFrame, features: pd.DataFrame | StoredFeatures,
         sets: dict[str, ClipSet], warm_from: Specialist | None = None, clip_cache: Any = None) -> Specialist:
    """The plain fit: the model on the labelled train clips, with val for early stopping; from
    ``warm_from`` when given and the model has a ``fit_warm``."""
    train, val = sets.get("train"), sets.get("val")
    if train is None or not (train.labels >= 0).any():
        raise ValueError(f"{spec.name}: no labelled training clips with features (split 'train')")
    if spec.train_on_views:
        train = with_views(train, features, spec.table, spec.order,
                           real_clip_ids=set(clips["clip_id"].astype(str)))
    model = spec.model_class()(cfg)
    model.clip_cache = clip_cache
    val = labelled(val) if val is not None else None
    if warm_from is not None and hasattr(model, "fit_warm"):
        return model.fit_warm(warm_from, labelled(train), val)  # it sets warm_start_: what it continued
    return model.fit(labelled(train), val)


def max_epochs_note(name: str, max_epochs: int | None, config: dict[str, Any] | None = None) -> str | None:
    """Why ``max_epochs`` changes nothing for this training, or None where it caps epochs.

    A setting silently ignored looks like one obeyed; callers show this note instead.
    """
    if max_epochs is None:
        return None
    spec = registry.specialist(name)
    if spec.pretrained_key and (config or {}).get(spec.pretrained_key):
        return f"max_epochs does not apply to {name} with a {spec.pretrained_key}: its network is not retrained"
    if not {"max_epochs", "epochs"} & registry.config_fields(spec):
        return f"max_epochs does not apply to {name}: it trains without epochs"
    return None


def score(model: Specialist, name: str, clips: pd.DataFrame, sets: dict[str, ClipSet]) -> FittedSpecialist:
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
    return FittedSpecialist(model, predictions, metrics, unscored)


__all__ = ["FittedSpecialist", "TrainingRequest", "check_specialist", "make_config", "max_epochs_note", "score",
           "fit_specialist"]
