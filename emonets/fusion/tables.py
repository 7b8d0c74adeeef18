"""The long ``predictions`` and ``clips`` tables as the arrays the fusers read (P, M, y)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from emonets.fusion.base import N_CLASSES, UNIFORM
from emonets.labels import LABEL_INDEX, PROB_COLUMNS


def predictions_to_tensor(predictions: pd.DataFrame, specialists: list[str]) -> tuple[list[str], np.ndarray, np.ndarray]:
    """The long `predictions` table as (clip_ids, P, M).

    A clip appears if any row names it (even a row of NaN probabilities); ``M[i, s]`` is True
    when specialist ``s`` gave clip ``i`` finite probabilities. Missing entries of ``P`` hold
    1/7. Rows of specialists not listed are ignored; a repeated (clip, specialist) row: the
    last one wins.
    """
    clip_ids = sorted(set(predictions["clip_id"].astype(str))) if len(predictions) else []
    index = {c: i for i, c in enumerate(clip_ids)}
    P = np.full((len(clip_ids), len(specialists), N_CLASSES), UNIFORM, dtype=np.float64)
    M = np.zeros((len(clip_ids), len(specialists)), dtype=bool)
    for s, name in enumerate(specialists):
        rows = predictions[predictions["specialist"] == name]
        if not len(rows):
            continue
        probs = rows[list(PROB_COLUMNS)].to_numpy(np.float64)
        ok = np.isfinite(probs).all(1)
        idx = np.array([index[str(c)] for c in rows["clip_id"]], dtype=np.int64)
        P[idx[ok], s] = probs[ok]
        M[idx[ok], s] = True
    return clip_ids, P, M


def labels_of(clip_ids: list[str], clips: pd.DataFrame) -> np.ndarray:
    """Class index per clip (-1 for unlabelled or unknown clips) from the `clips` table."""
    lab = clips.set_index("clip_id")["label"]
    return np.array([LABEL_INDEX.get(lab.get(c, ""), -1) for c in clip_ids], dtype=np.int64)
