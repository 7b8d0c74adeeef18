"""The confusion matrix as a picture: row-normalised colours, counts in the cells, full class names."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from data_catalog.atomic import atomic_path
from emonets.labels import EMOTIONS


def draw_confusion(ax, cm, title: str = "") -> None:
    """A confusion matrix on ``ax``: row-normalised colours, counts in the cells, full class names."""
    cm = np.asarray(cm)
    n = len(EMOTIONS)
    if cm.shape != (n, n):
        raise ValueError(f"confusion matrix must be {n}x{n}, got {cm.shape}")
    rates = cm / np.maximum(cm.sum(1, keepdims=True), 1)
    ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(n), EMOTIONS, rotation=40, ha="right", rotation_mode="anchor")
    ax.set_yticks(range(n), EMOTIONS)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(n):
        for j in range(n):
            ax.text(j, i, str(cm[i, j]), ha="center", va="center", fontsize=8,
                    color="white" if rates[i, j] > 0.5 else "black")
    ax.set_title(title, fontsize=10)


def confusion_png(cm, path: Path | str, title: str = "") -> Path:
    """Write ``draw_confusion``'s plot as a PNG, atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.4, 4.8), dpi=110)
    try:
        draw_confusion(ax, cm, title)
        fig.tight_layout()
        path = Path(path)
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png")
    finally:
        plt.close(fig)
    return path
