"""Evaluation: accuracy, macro-F1 and the confusion matrix over the seven classes, and its plot."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from emonets.labels import EMOTIONS

N = len(EMOTIONS)


def confusion(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """7x7 counts, rows = true class, columns = predicted, in EMOTIONS order (absent classes: 0)."""
    cm = np.zeros((N, N), dtype=np.int64)
    np.add.at(cm, (np.asarray(y_true, int), np.asarray(y_pred, int)), 1)
    return cm


def macro_f1(cm: np.ndarray) -> float:
    """Mean F1 over the classes that occur in the truth or the predictions."""
    tp = np.diag(cm).astype(float)
    support, predicted = cm.sum(1), cm.sum(0)
    present = (support + predicted) > 0
    if not present.any():
        return 0.0
    f1 = np.where(support + predicted > 0, 2 * tp / np.maximum(support + predicted, 1), 0.0)
    return float(f1[present].mean())


def metrics_dict(y_true, y_pred) -> dict:
    """{"accuracy", "macro_f1", "n", "confusion", "recall"} for integer class labels."""
    y_true, y_pred = np.asarray(y_true, int), np.asarray(y_pred, int)
    cm = confusion(y_true, y_pred)
    n = int(len(y_true))
    recall = [float(cm[i, i] / cm[i].sum()) if cm[i].sum() else None for i in range(N)]
    return {"accuracy": float((y_true == y_pred).mean()) if n else 0.0, "macro_f1": macro_f1(cm), "n": n,
            "confusion": cm.tolist(), "recall": dict(zip(EMOTIONS, recall))}


def confusion_png(cm, path: Path | str, *, title: str = "") -> Path:
    """Write the confusion matrix as a PNG (row-normalised colours, counts in the cells), atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from data_catalog.atomic import atomic_path

    cm = np.asarray(cm)
    rates = cm / np.maximum(cm.sum(1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(5.2, 4.6), dpi=110)
    ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(N), [e[:5] for e in EMOTIONS], rotation=45)
    ax.set_yticks(range(N), EMOTIONS)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(N):
        for j in range(N):
            ax.text(j, i, str(cm[i, j]), ha="center", va="center", fontsize=8,
                    color="white" if rates[i, j] > 0.5 else "black")
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return path
