"""Put a trained face ConvNet into the release (emonets/release/face_cnn), stored as float16.

Measures the net on FER-2013 val before and after the float16 conversion (face + mirror views),
writes the bundle, rewrites emonets/release/SHA256SUMS, and prints one JSON object last.

    python scripts/release_face_net.py emonets-store/bench/face_cnn_bundle
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
sys.path.insert(0, str(REPO / "benchmarks"))

from bench_face_cnn import load_split  # noqa: E402

from emonets.evaluation import metrics_dict  # noqa: E402
from emonets.release import RELEASE_DIR, verify, write_sums  # noqa: E402
from emonets.specialists.face_cnn.model import FaceCNN  # noqa: E402


def val_figures(model: FaceCNN, x: np.ndarray, y: np.ndarray) -> dict:
    started = time.perf_counter()
    probs = model.predict_frames(x)
    m = metrics_dict(y, probs.argmax(1))
    return {"accuracy": round(m["accuracy"], 4), "macro_f1": round(m["macro_f1"], 4), "n": m["n"],
            "recall": m["recall"], "confusion": m["confusion"],
            "ms_per_face": round(1000 * (time.perf_counter() - started) / len(x), 2)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("bundle", type=Path, help="a trained face_cnn bundle (no SVM stage)")
    ap.add_argument("--data", type=Path, default=Path(os.environ.get(
        "EMONETS_SHARED_DATA", REPO.parent / "shared" / "data")) / "fer2013")
    args = ap.parse_args()
    x_val, y_val = load_split(args.data, "val", REPO / "emonets-store" / "bench")
    model = FaceCNN.load(args.bundle)
    before = val_figures(model, x_val, y_val)
    model.state_ = {k: v.half() if v.is_floating_point() else v for k, v in model.state_.items()}
    model.svm_ = None
    target = RELEASE_DIR / "face_cnn"
    model.save(target)  # replaces the release's previous face_cnn folder in one rename
    write_sums(RELEASE_DIR)
    verify(RELEASE_DIR)
    after = val_figures(FaceCNN.load(target), x_val, y_val)
    size = sum(p.stat().st_size for p in target.rglob("*") if p.is_file())
    print(f"FER-2013 val: float32 {before['accuracy']:.4f} (macro-F1 {before['macro_f1']:.4f}), "
          f"float16 {after['accuracy']:.4f} (macro-F1 {after['macro_f1']:.4f}); bundle {size / 1e6:.2f} MB")
    print(json.dumps({"float32": before, "float16": after, "bytes": size, "bundle": str(target),
                      "source": str(args.bundle), "epochs_trained": model.metrics_.get("epochs_trained")}))


if __name__ == "__main__":
    main()
