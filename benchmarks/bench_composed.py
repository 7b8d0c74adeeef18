"""The composed audio-video benchmark, end to end through the Prefect flows.

compose (FER-2013 faces + RAVDESS speech; Train = FER train + actors 01-10, Val = FER PublicTest
+ actors 11-14, Test = other FER PublicTest faces + actors 15-18) -> train-all (ingest, extract,
train every specialist, fuse on Val) -> report on Test -> time `predict` per clip.
Prints the report's table, then one JSON object as its last line.

    python benchmarks/bench_composed.py --cnn-bundle emonets-store/bench/face_cnn_bundle
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")


def main() -> None:
    from emonets.datasets.compose.dataset import compose_dataset
    from flows.predict import predict
    from flows.train_all import train_all

    shared = Path(os.environ.get("EMONETS_SHARED_DATA", REPO.parent / "shared" / "data"))
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", type=Path, default=REPO / "emonets-store" / "bench" / "composed")
    ap.add_argument("--store", type=Path, default=REPO / "emonets-store" / "bench" / "composed-store")
    ap.add_argument("--per-class", type=int, default=0, help="clips per class and split (0: every pair the sources allow)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cnn-bundle", type=Path, default=None, help="a ConvNet trained by bench_face_cnn.py")
    ap.add_argument("--predict-clips", type=int, default=5)
    args = ap.parse_args()

    started = time.perf_counter()
    composed = compose_dataset(shared / "fer2013", shared / "ravdess-speech", args.out, per_class=args.per_class or None,
                               seed=args.seed, workers=2)
    compose_s = time.perf_counter() - started
    configs = {"face_cnn": {"cnn_bundle": str(args.cnn_bundle)}} if args.cnn_bundle else None
    started = time.perf_counter()
    summary = train_all(data_roots=[str(args.out)], store_root=str(args.store), configs=configs)
    train_s = time.perf_counter() - started
    report = json.loads((args.store / "reports" / "latest" / "report.json").read_text())
    print((args.store / "reports" / "latest" / "report.md").read_text())

    tests = sorted((args.out / "Test").rglob("*.mp4"))[: args.predict_clips]
    started = time.perf_counter()
    predict([str(p) for p in tests], None, str(args.store), "threads")
    predict_s = (time.perf_counter() - started) / max(1, len(tests))

    s = report["summary"]
    print(f"composed: {composed['clips']} clips; best specialist on test {s['best_specialist']} "
          f"{s['best_specialist_test_accuracy']:.3f}; fusion ({s['selected_fusion']}) {s['selected_fusion_test_accuracy']:.3f} "
          f"({s['fusion_gain_points']:+.1f} points); predict {predict_s:.1f} s per clip")
    print(json.dumps({"name": "composed", "clips": composed["clips"], "counts": composed["counts"],
                      "test_accuracy": report["test_accuracy"], "val_accuracy": report["val_accuracy"],
                      "test_macro_f1": report.get("test_macro_f1"), "summary": s,
                      "compose_seconds": round(compose_s, 1), "train_all_seconds": round(train_s, 1),
                      "predict_seconds_per_clip": round(predict_s, 2), "train_all": summary}))


if __name__ == "__main__":
    main()
