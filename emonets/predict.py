"""Prediction with a saved bundle (one specialist's, or the fused model) on extracted tables."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from emonets.bundle import read_description
from emonets.fusion.model import FusedModel, bundle_kind
from emonets.labels import EMOTIONS, PROB_COLUMNS
from emonets import registry
from emonets.training_data import clip_set


def load_model(path: Path | str):
    """A FusedModel, or a single specialist, from its bundle folder."""
    kind = bundle_kind(path)
    if kind == "fused":
        return FusedModel.load(path)
    return registry.specialist(kind).model_class().load(path)


def model_specialists(model) -> list[str]:
    return list(model.specialists) if isinstance(model, FusedModel) else [model.name]


def bundle_specialists(path: Path | str) -> list[str]:
    """The specialists a bundle holds, from its bundle.json alone (nothing loaded)."""
    description = read_description(path)
    if description["kind"] == "fused":
        return list((description.get("config") or {}).get("specialists", []))
    return [description["kind"]]


def bundle_stages(path: Path | str) -> list[str]:
    """The stages a bundle's specialists read, from its bundle.json alone (nothing loaded)."""
    return sorted(registry.stages_for(bundle_specialists(path)))


def specialist_rows(model, name: str, clips: pd.DataFrame, tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """One specialist's probabilities for the clips it can score (clip_id + p_* columns)."""
    spec = registry.specialist(name)
    table, order = spec.table, spec.order
    cs = clip_set(clips, tables[table], table, order)
    if len(cs) == 0:
        return pd.DataFrame(columns=["clip_id", *PROB_COLUMNS])
    probs = np.asarray(model.predict_proba(cs), dtype=np.float64)
    rows = pd.DataFrame(probs, columns=list(PROB_COLUMNS))
    rows.insert(0, "clip_id", cs.clip_ids)
    return rows[np.isfinite(probs).all(1)]


def predict_clips(model, clips: pd.DataFrame, tables: dict[str, pd.DataFrame]) -> list[dict[str, Any]]:
    """Per clip: the (fused) label and probabilities, each specialist's, and which were missing."""
    names = model_specialists(model)
    members = model.specialists if isinstance(model, FusedModel) else {model.name: model}
    per = {name: specialist_rows(members[name], name, clips, tables) for name in names}
    if isinstance(model, FusedModel):
        ids, fused, _, _ = model.fuse(per)
        final = dict(zip(ids, fused))
    else:
        rows = per[model.name]
        final = dict(zip(rows["clip_id"], rows[list(PROB_COLUMNS)].to_numpy()))
    out = []
    for clip in clips.itertuples(index=False):
        specs, missing = {}, []
        for name in names:
            hit = per[name][per[name]["clip_id"] == clip.clip_id]
            if hit.empty:
                missing.append(name)
                continue
            p = hit[list(PROB_COLUMNS)].to_numpy()[0]
            specs[name] = {"label": EMOTIONS[int(p.argmax())], "probabilities": _named(p)}
        probs = final.get(clip.clip_id)
        out.append({
            "clip_id": clip.clip_id, "path": clip.path, "true_label": clip.label or None,
            "label": EMOTIONS[int(np.argmax(probs))] if probs is not None else None,
            "probabilities": _named(probs) if probs is not None else None,
            "specialists": specs, "missing": missing,
        })
    return out


def _named(p) -> dict[str, float]:
    return {e: round(float(v), 4) for e, v in zip(EMOTIONS, p)}
