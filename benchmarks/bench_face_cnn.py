"""Train the face ConvNet on FER-2013 train and measure it on FER-2013 val.

Prints a human table (accuracy, per-class recall, confusion matrix, seconds per epoch) and one
JSON object as its last line. The epoch count is sized to the time budget from a measured
warm-up (so the learning-rate schedule completes); --max-epochs caps it.

    python benchmarks/bench_face_cnn.py --max-minutes 60 --out emonets-store/bench/face_cnn_bundle
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from emonets.evaluation import metrics_dict  # noqa: E402
from emonets.media.images import load_grey_images  # noqa: E402
from emonets.labels import EMOTIONS, LABEL_INDEX  # noqa: E402


def load_split(root: Path, split: str, cache_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """FER-2013 class folders of one split as (N, 48, 48) uint8 + labels, cached as .npz."""
    cache = cache_dir / f"fer2013_{split}.npz"
    if cache.is_file():
        with np.load(cache) as npz:
            return npz["x"], npz["y"]
    paths, labels = [], []
    for cls in EMOTIONS:
        files = sorted((root / split / cls).glob("*.jpg"))
        paths += files
        labels += [LABEL_INDEX[cls]] * len(files)
    x, y = load_grey_images(paths, size=48), np.array(labels, np.int64)
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_suffix(".tmp.npz")
    np.savez(tmp, x=x, y=y)
    os.replace(tmp, cache)
    return x, y


def print_confusion(confusion) -> None:
    """The confusion matrix (rows true, columns predicted) with each class's recall."""
    cm = np.asarray(confusion)
    print("confusion (rows: true, cols: predicted)")
    print("          " + " ".join(f"{e[:7]:>8}" for e in EMOTIONS) + "   recall")
    for i, e in enumerate(EMOTIONS):
        print(f"{e:>9} " + " ".join(f"{v:8d}" for v in cm[i]) + f"   {cm[i, i] / max(1, cm[i].sum()):.3f}")


def seconds_per_epoch(config, n_train: int, batches: int = 6) -> float:
    """Time a few real training steps (with augmentation) to size the epoch count."""
    import torch
    from torch.nn import functional as F

    from emonets.specialists.face_cnn.net import FaceNet, augment, to_input
    from emonets.specialists.lightning_utils import resolve_precision

    bf16 = resolve_precision(config.precision, gpu=False).startswith("bf16")  # the probe runs on the CPU
    net = FaceNet(widths=config.widths, convs=config.convs).to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(net.parameters())
    x = torch.randint(0, 255, (config.batch_size, 48, 48), dtype=torch.uint8)
    y = torch.randint(0, 7, (config.batch_size,))
    for i in range(batches + 1):
        if i == 1:
            start = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            out = net(augment(to_input(x)).contiguous(memory_format=torch.channels_last))
            loss = F.cross_entropy(out.float(), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    per_batch = (time.perf_counter() - start) / batches
    return per_batch * (n_train / config.batch_size) * 1.08  # + validation


def main() -> None:
    from emonets.specialists.face_cnn.model import FaceCNN, FaceCNNConfig
    from emonets.specialists.face_cnn.net import TTA_VIEWS

    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", type=Path, default=Path(os.environ.get("EMONETS_SHARED_DATA", REPO.parent / "shared" / "data")) / "fer2013")
    ap.add_argument("--max-minutes", "--minutes", dest="minutes", type=float, default=60.0,
                    help="training time budget (the epoch count is sized to it; Trainer max_time = 1.25x)")
    ap.add_argument("--max-epochs", type=int, default=60)
    ap.add_argument("--widths", default="32,96,192,384")
    ap.add_argument("--convs", default="1,2,2,2", help="convolutions per block (one entry per width)")
    ap.add_argument("--precision", default="auto", help='"auto" (bf16 where native), "32-true", "bf16-mixed"')
    ap.add_argument("--lr", type=float, default=FaceCNNConfig.lr, help="peak learning rate of the one-cycle schedule")
    ap.add_argument("--init", type=Path, default=None,
                    help="warm-start from this face_cnn bundle's ConvNet (same widths/convs); a new schedule runs on it")
    ap.add_argument("--seed", type=int, default=FaceCNNConfig.seed,
                    help="seed of the weights and the batch order; another seed gives an independent net to ensemble")
    ap.add_argument("--swa-epochs", type=int, default=0,
                    help="average the weights over the last N epochs, run at --swa-lr (stochastic weight averaging)")
    ap.add_argument("--swa-lr", type=float, default=FaceCNNConfig.swa_lr)
    ap.add_argument("--tta", default=FaceCNNConfig.tta, choices=sorted(TTA_VIEWS),
                    help='test-time views stored in the bundle: "mirror" (2) or "affine" (18)')
    ap.add_argument("--limit", type=int, default=0, help="use only the first N training faces (smoke runs)")
    ap.add_argument("--out", type=Path, default=REPO / "emonets-store" / "bench" / "face_cnn_bundle")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--devices", type=int, default=1,
                    help="train data-parallel (DDP) on this many GPUs, or CPU processes without a GPU")
    args = ap.parse_args()

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    cache = REPO / "emonets-store" / "bench"
    x_train, y_train = load_split(args.data, "train", cache)
    x_val, y_val = load_split(args.data, "val", cache)
    if args.limit:
        pick = np.random.default_rng(0).permutation(len(x_train))[: args.limit]
        x_train, y_train = x_train[pick], y_train[pick]
    widths = tuple(int(w) for w in args.widths.split(","))
    convs = tuple(int(c) for c in args.convs.split(","))
    init_state = None
    if args.init:
        start_from = FaceCNN.load(args.init)
        if (start_from.config.widths, start_from.config.convs) != (widths, convs):
            raise SystemExit(f"--init {args.init} has widths {start_from.config.widths} convs {start_from.config.convs}, "
                             f"not {widths} {convs}")
        init_state = start_from.state_
    probe = FaceCNNConfig(widths=widths, convs=convs, precision=args.precision)
    per_epoch = seconds_per_epoch(probe, len(x_train))
    epochs = int(max(2, min(args.max_epochs, args.minutes * 60 / per_epoch)))
    config = FaceCNNConfig(widths=widths, convs=convs, precision=args.precision, max_epochs=epochs, lr=args.lr, seed=args.seed,
                           devices=args.devices, swa_epochs=min(args.swa_epochs, epochs), swa_lr=args.swa_lr, tta=args.tta,
                           max_minutes=args.minutes * 1.25,
                           patience=max(8, epochs), log_dir=str(args.out.parent / "face_cnn_logs"))
    print(f"train {len(x_train)} faces, val {len(x_val)}; ~{per_epoch:.0f} s/epoch measured -> {epochs} epochs", flush=True)
    started = time.perf_counter()
    model = FaceCNN(config).fit_network(x_train, y_train, x_val, y_val, work_dir=config.log_dir,
                                       init_state=init_state)
    train_seconds = time.perf_counter() - started
    probs = model.predict_frames(x_val)
    metrics = metrics_dict(y_val, probs.argmax(1))
    model.metrics_["val"] = metrics
    if args.init:  # the bundle says what it continued from, not only that it was warm-started
        model.metrics_["init_bundle"] = str(args.init)
    model.save(args.out)

    print(f"\nface_cnn on FER-2013 val ({len(y_val)} faces): accuracy {metrics['accuracy']:.4f}, "
          f"macro-F1 {metrics['macro_f1']:.4f} (tta={config.tta}{', SWA' if config.swa_epochs else ''})")
    print_confusion(metrics["confusion"])
    m = model.metrics_
    print(f"epochs {m['epochs_trained']}, {m['seconds_per_epoch']:.1f} s/epoch on {m['device']} x{args.devices} "
          f"({m.get('precision')}), "
          f"{m['params']} parameters, "
          f"trained {train_seconds / 60:.1f} min; bundle {args.out}")
    print(json.dumps({"accuracy": metrics["accuracy"], "macro_f1": metrics["macro_f1"], "n": metrics["n"],
                      "confusion": metrics["confusion"], "seconds_per_epoch": m["seconds_per_epoch"],
                      "epochs": m["epochs_trained"], "device": m["device"], "devices": m.get("devices", 1),
                      "precision": m.get("precision"), "lr": args.lr, "seed": args.seed,
                      "init": str(args.init) if args.init else None,
                      "swa": m.get("swa"), "tta": config.tta,
                      "params": m["params"],
                      "train_minutes": round(train_seconds / 60, 2), "bundle": str(args.out)}))


if __name__ == "__main__":
    main()
