"""Evaluation over the seven classes: accuracy, macro-F1, per-class recall, the confusion matrix
(always 7x7 in EMOTIONS order, so matrices of different runs line up even when a class is absent),
and its plot."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from emonets.labels import EMOTIONS, LABEL_INDEX

N = len(EMOTIONS)


def as_indices(labels: Sequence | np.ndarray) -> np.ndarray:
    """Class indices 0..6 from indices or class names (any spelling ``normalise_label`` knows)."""
    arr = np.asarray(labels)
    if arr.dtype.kind in "iu":
        out = arr.astype(np.int64)
    elif arr.dtype.kind == "f" and (len(arr) == 0 or np.array_equal(arr, np.round(arr))):
        out = arr.astype(np.int64)
    else:
        from emonets.labels import normalise_label

        out = np.array([LABEL_INDEX[normalise_label(v)] for v in arr.tolist()], dtype=np.int64)
    if out.size and (out.min() < 0 or out.max() >= N):
        raise ValueError(f"class indices must lie in 0..{N - 1}; got {sorted(set(out[(out < 0) | (out >= N)].tolist()))}")
    return out.reshape(-1)


def _pair(y_true, y_pred) -> tuple[np.ndarray, np.ndarray]:
    t, p = as_indices(y_true), as_indices(y_pred)
    if len(t) != len(p):
        raise ValueError(f"{len(t)} true labels but {len(p)} predictions")
    return t, p


def accuracy(y_true, y_pred) -> float:
    """Fraction of exact matches (0.0 for no clips)."""
    t, p = _pair(y_true, y_pred)
    return float((t == p).mean()) if len(t) else 0.0


def confusion(y_true, y_pred) -> np.ndarray:
    """7x7 counts, rows = true class, columns = predicted, in EMOTIONS order (absent classes: 0)."""
    t, p = _pair(y_true, y_pred)
    cm = np.zeros((N, N), dtype=np.int64)
    np.add.at(cm, (t, p), 1)
    return cm


confusion_matrix = confusion


def per_class_recall(cm) -> dict[str, float | None]:
    """Recall per class name; None for a class with no true clips (not 0: it was never tested)."""
    cm = np.asarray(cm)
    return {name: (float(cm[i, i] / cm[i].sum()) if cm[i].sum() else None) for i, name in enumerate(EMOTIONS)}


def macro_f1(cm) -> float:
    """Mean F1 over the classes that occur in the truth or the predictions (as scikit-learn's
    ``f1_score(average="macro")`` does); 0.0 when there are none."""
    cm = np.asarray(cm)
    tp = np.diag(cm).astype(float)
    support, predicted = cm.sum(1), cm.sum(0)
    present = (support + predicted) > 0
    if not present.any():
        return 0.0
    f1 = 2 * tp / np.maximum(support + predicted, 1)
    return float(f1[present].mean())


def metrics_dict(y_true, y_pred) -> dict:
    """{"accuracy", "macro_f1", "n", "confusion" (7x7 list), "recall" (per class name)}."""
    t, p = _pair(y_true, y_pred)
    cm = confusion(t, p)
    return {"accuracy": accuracy(t, p), "macro_f1": macro_f1(cm), "n": int(len(t)),
            "confusion": cm.tolist(), "recall": per_class_recall(cm)}
