"""Turn feature tables into per-clip inputs (ClipSets) for the specialists, split by split.

The tables hold one row per frame (or block); a specialist wants, per clip, one array whose
first axis is time. Decoding is vectorised over the whole table and then cut at clip borders,
so ~32k FER-2013 one-frame "clips" take a fraction of a second, not a pandas groupby each.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import pandas as pd

from emonets import registry
from emonets.features.rows import decode_rows, usable_rows
from emonets.labels import LABEL_INDEX
from emonets.specialists.base import ClipSet


def clip_set(
    clips: pd.DataFrame,
    features: pd.DataFrame,
    table: str,
    order: str,
    *,
    decode: Callable[[str, pd.DataFrame], np.ndarray] = decode_rows,
) -> ClipSet:
    """A ClipSet over the clips (in ``clips`` order) that have at least one usable feature row."""
    rows = usable_rows(table, features)
    rows = rows[rows["clip_id"].isin(set(clips["clip_id"]))]
    rows = rows.sort_values(["clip_id", order], kind="stable")
    data = decode(table, rows)
    ids = rows["clip_id"].to_numpy()
    if len(ids) == 0:
        return ClipSet([], [], np.zeros(0, np.int64))
    starts = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]])
    ends = np.r_[starts[1:], len(ids)]
    by_id = {ids[s]: data[s:e] for s, e in zip(starts, ends)}
    kept = clips[clips["clip_id"].isin(by_id.keys())]
    labels = np.array([LABEL_INDEX.get(lab, -1) for lab in kept["label"]], dtype=np.int64)
    return ClipSet(kept["clip_id"].tolist(), [by_id[c] for c in kept["clip_id"]], labels)


def split_sets(clips: pd.DataFrame, features: pd.DataFrame, specialist: str) -> dict[str, ClipSet]:
    """The specialist's ClipSet for each split present in ``clips`` (train / val / test)."""
    spec = registry.specialist(specialist)
    table, order = spec.table, spec.order
    return {split: clip_set(group, features, table, order) for split, group in clips.groupby("split")}


def with_views(cs: ClipSet, features: pd.DataFrame, table: str, order: str,
               real_clip_ids: set[str] | frozenset[str] = frozenset()) -> ClipSet:
    """``cs`` plus the augmented copies the feature table holds for its clips.

    A copy's rows carry the clip id "<clip>@<tag>" (e.g. the `mfcc` stage's speed-perturbed
    copies, emonets.features.mfcc.view_id); each copy gets its clip's label. Only training sets should
    be widened like this: copies are never scored or measured. ``real_clip_ids`` (every clip of
    the dataset) guards the convention: a clip whose own id looks like "<clip>@<tag>" is a clip,
    never a copy.
    """
    ids = features["clip_id"].astype(str)
    base = ids.str.rsplit("@", n=1).str[0]
    is_view = (base != ids) & base.isin(set(cs.clip_ids)) & ~ids.isin(set(real_clip_ids) | set(cs.clip_ids))
    if not is_view.any():
        return cs
    views = features[is_view]
    label_of = dict(zip(cs.clip_ids, cs.labels))
    view_clips = pd.DataFrame({"clip_id": sorted(set(views["clip_id"]))})
    view_clips["label"] = ""
    extra = clip_set(view_clips, views, table, order)
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
