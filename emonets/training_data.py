"""Turn feature tables into per-clip inputs (ClipSets) for the specialists, split by split.

The tables hold one row per frame (or block); a specialist wants, per clip, one array whose
first axis is time (emonets.stored_features.arrays_by_clip). Training reads the store's
partitions in bounded batches (StoredFeatures); a DataFrame of rows works the same way.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import pandas as pd

from emonets import registry
from emonets.features.rows import decode_rows
from emonets.labels import LABEL_INDEX
from emonets.specialists.base import ClipSet
from emonets.stored_features import StoredFeatures, arrays_by_clip


def clip_set(
    clips: pd.DataFrame,
    features: pd.DataFrame,
    table: str,
    order: str,
    *,
    decode: Callable[[str, pd.DataFrame], np.ndarray] = decode_rows,
) -> ClipSet:
    """A ClipSet over the clips (in ``clips`` order) that have at least one usable feature row."""
    rows = features[features["clip_id"].isin(set(clips["clip_id"]))]
    return _from_arrays(clips, arrays_by_clip(table, order, rows, decode=decode))


def _from_arrays(clips: pd.DataFrame, by_id: dict) -> ClipSet:
    kept = clips[clips["clip_id"].isin(by_id.keys())]
    if kept.empty:
        return ClipSet([], [], np.zeros(0, np.int64))
    labels = np.array([LABEL_INDEX.get(lab, -1) for lab in kept["label"]], dtype=np.int64)
    return ClipSet(kept["clip_id"].tolist(), [by_id[c] for c in kept["clip_id"]], labels)


def needed_clip_ids(clips: pd.DataFrame, specialist: str) -> Callable[[str], bool]:
    """Which clip ids of its feature table a specialist's training uses: its clips, and the
    augmented copies ("<clip>@<tag>", see :func:`with_views`) of its training clips only."""
    ids = set(clips["clip_id"].astype(str))
    widened = set(clips.loc[clips["split"] == "train", "clip_id"].astype(str))
    if not registry.specialist(specialist).train_on_views:
        return ids.__contains__
    return lambda c: c in ids or c.rsplit("@", 1)[0] in widened


def split_sets(clips: pd.DataFrame, features: pd.DataFrame | StoredFeatures, specialist: str) -> dict[str, ClipSet]:
    """The specialist's ClipSet for each split present in ``clips`` (train / val / test).

    ``features``: the feature table's rows, or (what training uses, bounded in memory) the
    store's partitions of it.
    """
    spec = registry.specialist(specialist)
    if isinstance(features, StoredFeatures):
        by_id = features.per_clip()
        return {split: _from_arrays(group, by_id) for split, group in clips.groupby("split")}
    return {split: clip_set(group, features, spec.table, spec.order) for split, group in clips.groupby("split")}


def with_views(cs: ClipSet, features: pd.DataFrame | StoredFeatures, table: str, order: str,
               real_clip_ids: set[str] | frozenset[str] = frozenset()) -> ClipSet:
    """``cs`` plus the augmented copies the feature table holds for its clips.

    A copy's rows carry the clip id "<clip>@<tag>" (e.g. the `mfcc` stage's speed-perturbed
    copies, emonets.features.mfcc.view_id); each copy gets its clip's label. Only training sets should
    be widened like this: copies are never scored or measured. ``real_clip_ids`` (every clip of
    the dataset) guards the convention: a clip whose own id looks like "<clip>@<tag>" is a clip,
    never a copy.
    """
    stored = isinstance(features, StoredFeatures)
    ids = pd.Series(list(features.per_clip()) if stored else features["clip_id"], dtype=object).astype(str)
    base = ids.str.rsplit("@", n=1).str[0]
    is_view = (base != ids) & base.isin(set(cs.clip_ids)) & ~ids.isin(set(real_clip_ids) | set(cs.clip_ids))
    if not is_view.any():
        return cs
    view_clips = pd.DataFrame({"clip_id": sorted(set(ids[is_view]))})
    view_clips["label"] = ""
    if stored:
        extra = _from_arrays(view_clips, features.per_clip())
    else:
        extra = clip_set(view_clips, features[is_view.to_numpy()], table, order)
    label_of = dict(zip(cs.clip_ids, cs.labels))
    labels = np.array([label_of[c.rsplit("@", 1)[0]] for c in extra.clip_ids], dtype=np.int64)
    return ClipSet(cs.clip_ids + extra.clip_ids, cs.items + extra.items, np.concatenate([cs.labels, labels]))


def frames_and_labels(cs: ClipSet) -> tuple[np.ndarray, np.ndarray]:
    """Every frame of every labelled clip with its clip's label (for frame-level training)."""
    keep = [i for i, lab in enumerate(cs.labels) if lab >= 0]
    if not keep:
        return np.zeros((0,)), np.zeros(0, np.int64)
    frames = np.concatenate([cs.items[i] for i in keep])
    labels = np.concatenate([np.full(len(cs.items[i]), cs.labels[i]) for i in keep])
    return frames, labels
