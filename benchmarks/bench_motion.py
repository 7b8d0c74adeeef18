"""Motion specialist end to end on the real shared videos: blocks, autoencoder, words, chi2 SVM.

Extracts motion blocks from every CREMA-D clip (labelled by name) and talking-face clip
(unlabelled: they feed the unsupervised whitening, autoencoder and k-means only), trains the
specialist, scores every clip and checks a reloaded bundle predicts identically. Accuracy is not
measured here (six labelled clips, one per class): the fusion issue measures it on composed clips.
Prints a table, then one JSON line.

    nice -n 10 .venv/bin/python benchmarks/bench_motion.py [--max-epochs N] [--threads N]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from emonets.labels import EMOTIONS, LABEL_INDEX, normalise_label
from emonets.features.motion_blocks import MotionConfig, motion_blocks_from_frames
from emonets.specialists.base import ClipSet
from emonets.specialists.motion.model import MotionSpecialist, MotionSpecialistConfig
from emonets.media.video import iter_frames
from emonets.features.rows import clip_array

SHARED = Path(os.environ.get("EMONETS_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


def clips() -> list[tuple[str, Path, int]]:
    """(clip id, path, label index or -1) of the shared videos."""
    out = []
    for path in sorted((SHARED / "crema-d").glob("*.flv")):
        out.append((path.stem, path, LABEL_INDEX[normalise_label(path.stem.split("_")[2])]))
    for path in sorted((SHARED / "talking-faces").glob("*.mp4")):
        out.append((path.stem, path, -1))
    return out


def extract(path: Path, clip_id: str, config: MotionConfig) -> tuple[np.ndarray, int, float]:
    """Blocks, sampled frames and seconds: the body of extract_motion_blocks, with a frame counter."""
    count = [0]

    def frames():
        for f in iter_frames(path, fps=config.fps, gray=True):
            count[0] += 1
            yield f.t, f.image

    t0 = time.perf_counter()
    table = motion_blocks_from_frames(frames(), clip_id=clip_id, config=config)
    return clip_array("motion_blocks", table), count[0], time.perf_counter() - t0


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--max-epochs", type=int, default=MotionSpecialistConfig().max_epochs)
    ap.add_argument("--lr", type=float, default=MotionSpecialistConfig().lr)
    ap.add_argument("--threads", type=int, default=1,
                    help="torch, BLAS and OpenMP threads (default 1: on a shared 2-core box more threads oversubscribe)")
    args = ap.parse_args(argv)
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(args.threads)
    threadpool_limits(args.threads)

    mcfg = MotionConfig()
    rows, items, labels, ids = [], [], [], []
    for clip_id, path, label in clips():
        blocks, n_frames, seconds = extract(path, clip_id, mcfg)
        rows.append({"clip": clip_id, "label": EMOTIONS[label] if label >= 0 else "", "frames": n_frames,
                     "blocks": len(blocks), "extract_s": round(seconds, 3),
                     "frames_per_s": round(n_frames / seconds, 1)})
        items.append(blocks)
        labels.append(label)
        ids.append(clip_id)
    extract_s = sum(r["extract_s"] for r in rows)
    total_frames = sum(r["frames"] for r in rows)
    data = ClipSet(ids, items, np.array(labels))

    scfg = MotionSpecialistConfig(max_epochs=args.max_epochs, lr=args.lr)
    t0 = time.perf_counter()
    model = MotionSpecialist(scfg).fit(data)
    fit_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    proba = model.predict_proba(data)
    predict_s = time.perf_counter() - t0
    with tempfile.TemporaryDirectory() as tmp:
        path = model.save(Path(tmp) / "motion")
        size_mb = sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 1e6
        identical = bool(np.array_equal(MotionSpecialist.load(path).predict_proba(data), proba, equal_nan=True))
    scored = np.isfinite(proba).all(axis=1)
    m = model.metrics_
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    print(f"motion blocks {mcfg.block}x{mcfg.block}x{mcfg.depth} of {mcfg.frame_size} grey frames at {mcfg.fps} fps "
          f"(stride {mcfg.stride} px / {mcfg.time_stride} frames, cap {mcfg.max_blocks_per_clip} per clip)")
    print(f"{'clip':36} {'label':8} {'frames':>6} {'blocks':>6} {'extract s':>9} {'frames/s':>8}  predicted (p)")
    for r, p in zip(rows, proba):
        pred = f"{EMOTIONS[int(np.nanargmax(p))]} ({np.nanmax(p):.2f})" if np.isfinite(p).all() else "NOT SCORED"
        print(f"{r['clip']:36} {r['label']:8} {r['frames']:6d} {r['blocks']:6d} {r['extract_s']:9.2f} "
              f"{r['frames_per_s']:8.1f}  {pred}")
    print(f"extraction: {total_frames} frames in {extract_s:.1f} s = {total_frames / extract_s:.0f} frames/s "
          f"(decode + downscale + blocks, one process)")
    print(f"whitening: {m['whitening_components']} components of {int(np.prod(model.block_shape_))}; "
          f"autoencoder on {m['ae_blocks']} blocks, {m['ae_epochs']} epochs on {m['ae_accelerator']} "
          f"({m['ae_precision']}), {np.mean(m['ae_epoch_seconds']):.2f} s/epoch")
    print(f"reconstruction error (whitened, clean input; 1.0 = reconstructing nothing): "
          f"{m['ae_initial_loss']:.3f} before -> {m['ae_final_loss']:.3f} after")
    print("denoising train loss per epoch: " + " ".join(f"{h['train_loss']:.3f}" for h in m["ae_history"]))
    print(f"whitening fit + whitening of the AE's blocks {m['prep_seconds']} s; torch/BLAS threads {args.threads}")
    print(f"k-means {scfg.n_words} words {m['kmeans_seconds']} s; SVM on {m['svm_clips']} labelled clips "
          f"(chi2 gamma {m['chi2_gamma']:.3g}, calibrated={m['calibrated']}); fit {fit_s:.1f} s, predict {predict_s:.1f} s")
    print(f"scored {int(scored.sum())}/{len(scored)} clips; bundle {size_mb:.1f} MB, reload identical: {identical}; "
          f"peak RSS {peak_mb:.0f} MB")
    result = {
        "benchmark": "motion_real_videos",
        "clips": len(rows), "scored": int(scored.sum()), "all_scored": bool(scored.all()),
        "labelled_clips": int((data.labels >= 0).sum()),
        "blocks_per_clip": {r["clip"]: r["blocks"] for r in rows},
        "total_blocks": int(sum(r["blocks"] for r in rows)),
        "extract_frames_per_s": round(total_frames / extract_s, 1), "extract_seconds": round(extract_s, 2),
        "whitening_components": m["whitening_components"],
        "ae_blocks": m["ae_blocks"], "ae_epochs": m["ae_epochs"],
        "ae_seconds_per_epoch": round(float(np.mean(m["ae_epoch_seconds"])), 3),
        "ae_accelerator": m["ae_accelerator"], "ae_precision": m["ae_precision"],
        "ae_recon_initial": round(m["ae_initial_loss"], 4), "ae_recon_final": round(m["ae_final_loss"], 4),
        "ae_train_loss_first_last": [round(m["ae_history"][0]["train_loss"], 4),
                                     round(m["ae_history"][-1]["train_loss"], 4)],
        "fit_seconds": round(fit_s, 1), "predict_seconds": round(predict_s, 2), "threads": args.threads,
        "prep_seconds": m["prep_seconds"], "kmeans_seconds": m["kmeans_seconds"],
        "svm_train_accuracy_resubstitution": m["train_accuracy"],
        "reload_identical": identical, "bundle_mb": round(size_mb, 2), "peak_rss_mb": round(peak_mb),
        "motion_config": mcfg.to_dict(), "specialist_config": scfg.to_dict(),
    }
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
