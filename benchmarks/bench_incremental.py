"""Incremental retraining: what one added, ten added or one removed clip costs `train-all`, warm
(continuing from the previous bundles, emonets.retraining) against a from-scratch retrain on the
same data, with every specialist's val accuracy next to each other.

Steps, each `emonets train-all ROOT --store S` run as a user runs it (a subprocess), in one store:

1. full: a new store on the composed set less ``--added`` held-back Train clips (extraction included);
2. no change: the same command again;
3. for each change (one clip added, ten added, one Train clip removed): the change is made in the
   data root, `train-all` runs (warm where the rule allows: the timed figure), then
   `train-all --full` on the same data retrains from scratch every model that was warm-started
   (the comparison; the next change then starts from those from-scratch models).

Per run: wall seconds and their share of the full run's, each phase's seconds, each specialist's
status, how it was trained, its clip-cache hits and its val accuracy (from its bundle), the fused
models' test accuracy. The face specialist starts from the shipped FER-2013 ConvNet, as in the
demo (its SVM stage learns from the clips). One JSON object is the last line.

    python benchmarks/bench_incremental.py --size 400
    python benchmarks/bench_incremental.py --size 40 --max-seconds 1 --max-epochs 1   # a quick look

``--continue FOLDER`` measures again, on a copy of an earlier run's store (nothing else running):
``--adds`` new clips (composed with another seed, so their faces and voices are new pairings)
added one at a time, each followed by `train-all` (warm), and one no-change run. The first warm
run with a newer library fills what its caches lack; the later ones are the steady state.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))


def train_all(root: Path, store: Path, args, *, full: bool = False) -> dict:
    """One `emonets train-all` run; its summary, wall time and each specialist's val accuracy."""
    from emonets.release import shipped_model

    config = {"face_cnn": {"cnn_bundle": str(shipped_model("face_cnn"))}}
    cmd = [str(Path(sys.executable).with_name("emonets")), "train-all", str(root), "--store", str(store),
           "--config", json.dumps(config)] + (["--full"] if full else [])
    if args.max_epochs:
        cmd += ["--max-epochs", str(args.max_epochs)]
    started = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PREFECT_LOGGING_LEVEL": "WARNING"})
    wall = time.perf_counter() - started
    last = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""
    if done.returncode != 0 or not last.startswith("{"):
        raise SystemExit(f"train-all failed (exit {done.returncode}):\n{(done.stdout + done.stderr)[-4000:]}")
    summary = json.loads(last)
    specialists = {}
    for name, info in summary["specialists"].items():
        desc = json.loads((store / "models" / name / "bundle.json").read_text())
        val = desc.get("metrics", {}).get("splits", {}).get("val", {})
        retraining = info.get("retraining") or {}
        specialists[name] = {
            "status": info["status"], "seconds": info.get("seconds"), "trained": retraining.get("trained"),
            "rule": retraining.get("mode"), "reason": retraining.get("reason"),
            "clip_cache": retraining.get("clip_cache"),
            "val_accuracy": val.get("accuracy"), "val_n": val.get("n")}
    return {"wall_seconds": round(wall, 1), "clips": summary["clips"], "phase_seconds": summary.get("phase_seconds"),
            "extraction_computed": summary["extraction"]["computed"], "specialists": specialists,
            "fused_test_accuracy": {k: v for k, v in summary.get("test_accuracy", {}).items()
                                    if k not in summary["specialists"]}}


def train_clips(root: Path) -> list[Path]:
    return sorted((root / "Train").rglob("*.mp4"))


def main() -> None:
    from bench_scale import plan_for
    from emonets.datasets.compose.dataset import compose_dataset
    from emonets.datasets.compose.sources import scan_faces, scan_speech

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=400, help="clips of the composed set (before holding any back)")
    ap.add_argument("--added", type=int, default=10, help="clips added in the largest addition")
    ap.add_argument("--out", type=Path, default=REPO / "emonets-store" / "bench" / "incremental")
    ap.add_argument("--shared", type=Path, default=Path(os.environ.get("EMONETS_SHARED_DATA",
                                                                          REPO.parent / "shared" / "data")))
    ap.add_argument("--max-seconds", type=float, default=None, help="cut clips to this length (quick looks only)")
    ap.add_argument("--max-epochs", type=int, default=None, help="cap training epochs (quick looks only)")
    ap.add_argument("--continue", dest="continue_from", type=Path, default=None,
                    help="an earlier run's folder: measure added clips again on a copy of its store")
    ap.add_argument("--adds", type=int, default=3, help="with --continue: clips added one at a time")
    args = ap.parse_args()
    if args.continue_from is not None:
        return continue_run(args)

    faces, speech = scan_faces(args.shared / "fer2013")[0], scan_speech(args.shared / "ravdess-speech")[0]
    per_class, reuse, _ = plan_for(args.size, faces, speech)
    folder = args.out / f"{args.size}-{time.strftime('%Y%m%d-%H%M%S')}"
    root, held = folder / "clips", folder / "held-back"
    compose_dataset(args.shared / "fer2013", args.shared / "ravdess-speech", root, per_class=per_class,
                    reuse_speech=reuse, seed=0, workers=2, max_seconds=args.max_seconds)
    store = folder / "store"
    # held back: the last ``1 + added`` Train clips (the composer's order is seeded), kept beside the root
    back = train_clips(root)[-(1 + args.added):]
    for clip in back:
        dest = held / clip.relative_to(root)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(clip, dest)

    def add(clips: list[Path]) -> None:
        for clip in clips:
            shutil.move(clip, root / clip.relative_to(held))

    runs = {"full": train_all(root, store, args)}
    print(f"full: {runs['full']['wall_seconds']} s on {runs['full']['clips']} clips", flush=True)
    runs["no_change"] = train_all(root, store, args)
    held_clips = [held / c.relative_to(root) for c in back]
    changes = {"one_added": lambda: add(held_clips[:1]), "ten_added": lambda: add(held_clips[1:]),
               "one_removed": lambda: shutil.move(train_clips(root)[0], held / "removed.mp4")}
    for name, change in changes.items():
        change()
        runs[name] = train_all(root, store, args)
        runs[f"{name}_from_scratch"] = train_all(root, store, args, full=True)
        print(f"{name}: {runs[name]['wall_seconds']} s warm, {runs[f'{name}_from_scratch']['wall_seconds']} s "
              "from scratch", flush=True)
    full_s = runs["full"]["wall_seconds"]
    retrain_s = runs["one_added_from_scratch"]["wall_seconds"]
    comparison = {}
    for name in changes:
        warm, scratch = runs[name], runs[f"{name}_from_scratch"]
        comparison[name] = {
            "warm_seconds": warm["wall_seconds"], "from_scratch_seconds": scratch["wall_seconds"],
            "share_of_full_run": round(warm["wall_seconds"] / full_s, 3),
            "share_of_full_retrain": round(warm["wall_seconds"] / max(1e-9, scratch["wall_seconds"]), 3),
            "trained": {s: warm["specialists"][s]["trained"] for s in warm["specialists"]},
            "val_accuracy_warm": {s: v["val_accuracy"] for s, v in warm["specialists"].items()},
            "val_accuracy_from_scratch": {s: v["val_accuracy"] for s, v in scratch["specialists"].items()},
            "val_points_warm_minus_scratch": {
                s: (round(100 * (v["val_accuracy"] - scratch["specialists"][s]["val_accuracy"]), 2)
                    if v["val_accuracy"] is not None and scratch["specialists"][s]["val_accuracy"] is not None
                    else None) for s, v in warm["specialists"].items()},
        }
    result = {"name": "incremental", "size": args.size, "clips_full": runs["full"]["clips"],
              "full_seconds": full_s, "no_change_seconds": runs["no_change"]["wall_seconds"],
              "full_retrain_without_extraction_seconds": retrain_s, "comparison": comparison, "runs": runs,
              "store": str(store)}
    (folder / "result.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result))


def continue_run(args) -> None:
    """--continue: one-at-a-time additions on a copy of an earlier run's store (see the module doc)."""
    from emonets.datasets.compose.dataset import compose_dataset

    folder = args.continue_from
    earlier = json.loads((folder / "result.json").read_text())
    root, store = folder / "clips", folder / f"store-continued-{time.strftime('%H%M%S')}"
    shutil.copytree(folder / "store", store, symlinks=True)
    extra = folder / "extra"  # new face/voice pairings: another seed, one clip a class and split
    compose_dataset(args.shared / "fer2013", args.shared / "ravdess-speech", extra, per_class=1, seed=1,
                    split="train", workers=2)
    new = sorted((extra / "Train").rglob("*.mp4"))[: args.adds]
    runs = {"no_change": train_all(root, store, args)}
    added = []
    try:
        for i, clip in enumerate(new, 1):
            dest = root / "Train" / clip.parent.name / f"extra-{clip.name}"
            shutil.copy2(clip, dest)
            added.append(dest)
            runs[f"added_{i}"] = train_all(root, store, args)
            print(f"added {i}: {runs[f'added_{i}']['wall_seconds']} s", flush=True)
    finally:
        for dest in added:  # the data root as the earlier run left it
            dest.unlink()
    full_s = earlier["full_seconds"]
    result = {"name": "incremental-continued", "from": str(folder), "full_seconds_earlier": full_s,
              "no_change_seconds": runs["no_change"]["wall_seconds"],
              "added_seconds": [runs[f"added_{i}"]["wall_seconds"] for i in range(1, len(new) + 1)],
              "added_share_of_full_run": [round(runs[f"added_{i}"]["wall_seconds"] / full_s, 3)
                                          for i in range(1, len(new) + 1)],
              "runs": runs, "store": str(store)}
    (folder / f"continued-{time.strftime('%H%M%S')}.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
