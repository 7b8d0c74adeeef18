"""Bag of mouths on FER-2013: train on the mouth region of the train faces, score FER-2013 val.

The mouth region is the one ``emonets.features.mouths`` cuts from an aligned 48x48 face (rows 30..46,
cols 10..38 unless its MouthConfig says otherwise). Prints a table, then one JSON line.

    nice -n 10 .venv/bin/python benchmarks/bench_bag_of_mouths.py [--per-class N] [--centroids K] ...
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from emonets.media.images import load_grey_images
from emonets.labels import EMOTIONS, LABEL_INDEX
from emonets.specialists.bag_of_mouths.model import BagOfMouths, BagOfMouthsConfig
from emonets.specialists.base import ClipSet

SHARED = Path(os.environ.get("EMONETS_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


def mouth_region() -> tuple[slice, slice]:
    """Rows and columns of the mouth in an aligned 48x48 face (from emonets.features.mouths when present)."""
    try:
        from emonets.features.mouths import MouthConfig

        cfg = MouthConfig()
        rows = getattr(cfg, "rows", None)
        cols = getattr(cfg, "cols", None)
        if rows is not None and cols is not None:
            return slice(*rows), slice(*cols)
    except ImportError:
        pass
    return slice(30, 46), slice(10, 38)


def load_split(split: str, per_class: int | None, seed: int) -> tuple[np.ndarray, np.ndarray, list[str]]:
    rng = np.random.default_rng(seed)
    paths, labels = [], []
    for name in EMOTIONS:
        files = sorted((SHARED / "fer2013" / split / name).glob("*.jpg"))
        if per_class is not None and len(files) > per_class:
            files = [files[i] for i in sorted(rng.choice(len(files), per_class, replace=False))]
        paths += files
        labels += [LABEL_INDEX[name]] * len(files)
    rows, cols = mouth_region()
    faces = load_grey_images(paths, size=48)
    return faces[:, rows, cols], np.array(labels), [p.stem for p in paths]


def macro_f1(y: np.ndarray, p: np.ndarray) -> float:
    f1 = []
    for c in range(len(EMOTIONS)):
        tp, fp, fn = np.sum((p == c) & (y == c)), np.sum((p == c) & (y != c)), np.sum((p != c) & (y == c))
        f1.append(0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn))
    return float(np.mean(f1))


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--per-class", type=int, default=None, help="train images per class (default: all)")
    ap.add_argument("--val-per-class", type=int, default=None)
    ap.add_argument("--centroids", type=int, default=BagOfMouthsConfig().n_centroids)
    ap.add_argument("--grid", type=int, nargs=2, default=BagOfMouthsConfig().grid)
    ap.add_argument("--patch", type=int, default=BagOfMouthsConfig().patch)
    ap.add_argument("--C", type=float, default=BagOfMouthsConfig().C)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1,
                    help="BLAS and OpenMP threads (default 1: on a shared 2-core box more threads oversubscribe)")
    args = ap.parse_args(argv)
    from threadpoolctl import threadpool_limits

    threadpool_limits(args.threads)

    t0 = time.perf_counter()
    x_tr, y_tr, ids_tr = load_split("train", args.per_class, args.seed)
    x_va, y_va, ids_va = load_split("val", args.val_per_class, args.seed)
    load_s = time.perf_counter() - t0
    train = ClipSet(ids_tr, list(x_tr[:, None]), y_tr)
    val = ClipSet(ids_va, list(x_va[:, None]), y_va)
    cfg = BagOfMouthsConfig(n_centroids=args.centroids, grid=tuple(args.grid), patch=args.patch, C=args.C,
                            seed=args.seed)
    t0 = time.perf_counter()
    model = BagOfMouths(cfg).fit(train)
    fit_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    pred = model.predict_proba(val).argmax(axis=1)
    predict_s = time.perf_counter() - t0
    acc = float((pred == y_va).mean())
    f1 = macro_f1(y_va, pred)
    confusion = np.zeros((len(EMOTIONS), len(EMOTIONS)), dtype=int)
    np.add.at(confusion, (y_va, pred), 1)

    print(f"bag of mouths on FER-2013 mouth regions {x_tr.shape[1:]}: train {len(y_tr)} images, val {len(y_va)}")
    print(f"config: {cfg.to_dict()}")
    print(f"loading {load_s:.1f} s, fit {fit_s:.1f} s (dictionaries {model.metrics_['dictionary_seconds']} s), "
          f"predict {predict_s:.1f} s; train frame accuracy {model.metrics_['train_frame_accuracy']:.3f}")
    print(f"val accuracy {acc:.4f}  macro-F1 {f1:.4f}  (majority class {np.bincount(y_va).max() / len(y_va):.4f})")
    print("confusion (rows true, cols predicted): " + " ".join(f"{e[:4]:>5}" for e in EMOTIONS))
    for e, row in zip(EMOTIONS, confusion):
        print(f"  {e:>9} " + " ".join(f"{v:5d}" for v in row))
    result = {
        "benchmark": "bag_of_mouths_fer2013", "accuracy": round(acc, 4), "macro_f1": round(f1, 4), "n": int(len(y_va)),
        "n_train": int(len(y_tr)), "train_subsampled_per_class": args.per_class,
        "train_frame_accuracy": round(model.metrics_["train_frame_accuracy"], 4),
        "fit_seconds": round(fit_s, 1), "predict_seconds": round(predict_s, 1), "threads": args.threads,
        "whitening_components": model.metrics_["whitening_components"],
        "confusion": confusion.tolist(), "labels": list(EMOTIONS), "config": cfg.to_dict(),
    }
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
