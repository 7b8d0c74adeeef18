"""Audio specialist on RAVDESS speech, speaker-independent: train actors 01-14, report 15-18.

Seven classes, calm dropped. Features are extracted once per feature config and cached under
``emonets-store/bench/``. The specialist trains for a fixed number of epochs with no look at the
report actors (settings were chosen on an inner split: train 01-10, validate 11-14, which
``--inner`` re-runs). The plain baseline of the issue (22 MFCC + Δ + ΔΔ pooled to mean and std,
RBF SVM) runs on the same split in the same run.

    nice -n 10 .venv/bin/python benchmarks/bench_audio.py [--data DIR] [--max-epochs N] [--out BUNDLE]

Prints a human table, then ONE JSON object as its last line.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from emonets.audio import load_audio  # noqa: E402
from emonets.labels import EMOTIONS, LABEL_INDEX  # noqa: E402
from emonets.mfcc import MfccConfig, mfcc_frames  # noqa: E402
from emonets.specialists.audio import AudioConfig, AudioSpecialist  # noqa: E402
from emonets.specialists.base import ClipSet  # noqa: E402

# RAVDESS emotion codes (3rd field of the file name); 02 calm is not an EmoNets class: dropped.
RAVDESS_EMOTIONS = {"01": "neutral", "03": "happy", "04": "sad", "05": "angry", "06": "fear",
                    "07": "disgust", "08": "surprise"}

# The frame features the specialist uses: the paper's 22 MFCC + Δ + ΔΔ plus log energy, pitch
# and 5 spectral-shape descriptors (the paper also added ~26 spectral descriptors), each with Δ, ΔΔ.
FEATURES = MfccConfig(extras=("energy", "pitch", "spectral"))


def default_data() -> Path:
    shared = Path(os.environ.get("EMONETS_SHARED_DATA", REPO.parent / "shared" / "data"))
    return shared / "ravdess-speech"


def parse_ravdess(root: Path) -> list[dict]:
    """Speech files with a kept emotion: path, clip id, label index, actor (int)."""
    rows = []
    for path in sorted(root.glob("Actor_*/*.*")):
        parts = path.stem.split("-")
        if path.suffix.lower() not in (".flac", ".wav") or len(parts) != 7:
            continue
        if parts[2] not in RAVDESS_EMOTIONS:
            continue
        rows.append({"path": path, "clip_id": path.stem, "label": LABEL_INDEX[RAVDESS_EMOTIONS[parts[2]]],
                     "actor": int(parts[6])})
    return rows


def cached_features(rows: list[dict], config: MfccConfig, cache_dir: Path) -> tuple[list[np.ndarray], float]:
    """Frame features of every file (cached by file names, sizes, mtimes and config); seconds spent."""
    key = hashlib.sha256(json.dumps(
        [config.to_dict(), [(str(r["path"]), r["path"].stat().st_size, r["path"].stat().st_mtime_ns) for r in rows]],
        sort_keys=True).encode()).hexdigest()[:16]
    cache = cache_dir / f"ravdess-{key}.npz"
    if cache.is_file():
        with np.load(cache, allow_pickle=False) as z:
            return [z[r["clip_id"]] for r in rows], 0.0
    start = time.perf_counter()
    feats = {r["clip_id"]: mfcc_frames(load_audio(r["path"], sr=config.sr), sr=config.sr, config=config) for r in rows}
    seconds = time.perf_counter() - start
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_suffix(".tmp.npz")
    np.savez(tmp, **feats)
    os.replace(tmp, cache)
    return [feats[r["clip_id"]] for r in rows], seconds


def actor_range(text: str) -> list[int]:
    """'1-14' or '15,17' -> the actor numbers."""
    actors: list[int] = []
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        actors += list(range(int(lo), int(hi or lo) + 1))
    return actors


def mfcc_columns(config: MfccConfig) -> np.ndarray:
    """Columns of the 22 MFCC and their Δ, ΔΔ inside a richer feature layout."""
    blocks = 3 if config.deltas else 1
    return np.concatenate([np.arange(config.n_mfcc) + b * config.n_static for b in range(blocks)])


def svm_baseline(train: list[np.ndarray], y_train: np.ndarray, test: list[np.ndarray]) -> np.ndarray:
    """Mean and std over frames of MFCC + Δ + ΔΔ, standardised, RBF SVM: predicted labels."""
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    def pool(items):
        return np.stack([np.concatenate([x.mean(0), x.std(0)]) for x in items])

    model = make_pipeline(StandardScaler(), SVC(C=10.0, gamma="scale")).fit(pool(train), y_train)
    return model.predict(pool(test))


def clipset(rows, feats, mask) -> ClipSet:
    idx = np.flatnonzero(mask)
    return ClipSet([rows[i]["clip_id"] for i in idx], [feats[i] for i in idx],
                   np.array([rows[i]["label"] for i in idx], dtype=np.int64))


def evaluate(y_true: np.ndarray, y_pred: np.ndarray) -> dict:
    from sklearn.metrics import confusion_matrix, f1_score

    return {
        "accuracy": float((y_true == y_pred).mean()),
        "macro_f1": float(f1_score(y_true, y_pred, average="macro", labels=range(len(EMOTIONS)))),
        "confusion": confusion_matrix(y_true, y_pred, labels=range(len(EMOTIONS))).tolist(),
    }


def run_split(name, rows, feats, train_mask, test_mask, config, out=None) -> dict:
    train, test = clipset(rows, feats, train_mask), clipset(rows, feats, test_mask)
    start = time.perf_counter()
    model = AudioSpecialist(config).fit(train)  # no look at the test actors while training
    train_seconds = time.perf_counter() - start
    pred = model.predict_proba(test).argmax(1)
    result = evaluate(test.labels, pred)
    actors = np.array([rows[i]["actor"] for i in np.flatnonzero(test_mask)])
    result.update(
        n=len(test), n_train=len(train), train_seconds=train_seconds,
        seconds_per_epoch=model.metrics_["seconds_per_epoch"],
        per_actor={int(a): float((pred[actors == a] == test.labels[actors == a]).mean()) for a in np.unique(actors)},
    )
    cols = mfcc_columns(FEATURES)
    svm_pred = svm_baseline([x[:, cols] for x in train.items], train.labels, [x[:, cols] for x in test.items])
    result["baseline_svm_accuracy"] = float((svm_pred == test.labels).mean())
    if out:
        model.save(out)
    print_split(name, result)
    return result


def print_split(name: str, r: dict) -> None:
    short = [e[:4] for e in EMOTIONS]
    print(f"\n== {name}: {r['n_train']} training clips, {r['n']} test clips ==")
    print(f"{'audio specialist accuracy':<30}{r['accuracy']:.3f}")
    print(f"{'audio specialist macro-F1':<30}{r['macro_f1']:.3f}")
    print(f"{'baseline mean/std + SVM':<30}{r['baseline_svm_accuracy']:.3f}")
    print(f"{'seconds per epoch (CPU)':<30}{r['seconds_per_epoch']:.1f}")
    print(f"{'training seconds':<30}{r['train_seconds']:.0f}")
    print("per actor: " + ", ".join(f"{a:02d}: {acc:.3f}" for a, acc in r["per_actor"].items()))
    print("confusion (rows true, columns predicted):")
    print("      " + " ".join(f"{s:>5}" for s in short))
    for s, row in zip(short, r["confusion"]):
        print(f"{s:>5} " + " ".join(f"{v:>5d}" for v in row))


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=default_data(), help="RAVDESS speech root (Actor_NN/)")
    parser.add_argument("--max-epochs", type=int, default=AudioConfig().max_epochs)
    parser.add_argument("--out", type=Path, default=None, help="save the trained model bundle here")
    parser.add_argument("--train-actors", default="1-14", help="actor range trained on, e.g. 1-14")
    parser.add_argument("--test-actors", default="15-18", help="actor range reported on, e.g. 15-18")
    parser.add_argument("--test-data", type=Path, default=None,
                        help="a second RAVDESS root whose clips (all actors) are the test set instead")
    parser.add_argument("--seeds", type=int, default=len(AudioConfig().seeds), help="ensemble size")
    parser.add_argument("--inner", action="store_true", help="also run the inner split (train 01-10, test 11-14)")
    parser.add_argument("--cache", type=Path, default=REPO / "emonets-store" / "bench")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    rows = parse_ravdess(args.data)
    if not rows:
        raise SystemExit(f"no RAVDESS speech files under {args.data}")
    train_actors, test_actors = actor_range(args.train_actors), actor_range(args.test_actors)
    is_test = np.zeros(len(rows), bool)
    if args.test_data is not None:
        extra = parse_ravdess(args.test_data)
        if not extra:
            raise SystemExit(f"no RAVDESS speech files under {args.test_data}")
        rows = [r for r in rows if r["actor"] in train_actors]
        is_test = np.r_[np.zeros(len(rows), bool), np.ones(len(extra), bool)]
        rows += [{**r, "clip_id": f"test_{r['clip_id']}"} for r in extra]
    feats, extract_seconds = cached_features(rows, FEATURES, args.cache)
    actors = np.array([r["actor"] for r in rows])
    train_mask = ~is_test & np.isin(actors, train_actors)
    test_mask = is_test if args.test_data is not None else np.isin(actors, test_actors)
    if not train_mask.any() or not test_mask.any():
        raise SystemExit("no training or no test clips: check --train-actors / --test-actors / --test-data")
    config = AudioConfig(max_epochs=args.max_epochs, seeds=tuple(range(args.seeds)))
    print(f"{len(rows)} clips (calm dropped), {FEATURES.n_features} features per frame, "
          f"extraction {extract_seconds:.0f} s ({'cached' if extract_seconds == 0 else 'computed'})")
    print(f"config: {json.dumps(config.to_dict())}")

    summary: dict = {}
    if args.inner:
        inner = run_split("inner: train actors 01-10, test 11-14", rows, feats, actors <= 10,
                          (actors >= 11) & (actors <= 14), config)
        summary.update(inner_accuracy=inner["accuracy"], inner_macro_f1=inner["macro_f1"],
                       inner_baseline_svm_accuracy=inner["baseline_svm_accuracy"])
    test_name = f"test root {args.test_data}" if args.test_data is not None else f"test actors {args.test_actors}"
    outer = run_split(f"validation: train actors {args.train_actors}, {test_name}", rows, feats, train_mask,
                      test_mask, config, out=args.out)
    result = {
        "accuracy": outer["accuracy"], "macro_f1": outer["macro_f1"], "n": outer["n"],
        "confusion": outer["confusion"], "seconds_per_epoch": outer["seconds_per_epoch"],
        "baseline_svm_accuracy": outer["baseline_svm_accuracy"], "per_actor": outer["per_actor"],
        "train_seconds": outer["train_seconds"], "epochs": args.max_epochs, "seeds": args.seeds,
        "classes": list(EMOTIONS), **summary,
    }
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
