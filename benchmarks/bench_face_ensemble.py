"""Measure trained face ConvNets, alone and averaged as one ensemble, on FER-2013 val.

Each bundle comes from ``bench_face_cnn.py`` (or ``emonets train face_cnn``). Prints each
member's accuracy, the ensemble's accuracy, per-class recall and confusion matrix, the
ensemble's accuracy without each member (what that member adds), writes the
ensemble as one face_cnn bundle (usable as ``{"cnn_bundle": ...}`` in the pipeline), and ends
with one JSON object. ``--tta affine`` averages 18 views of each face instead of the face and its
mirror image; the written bundle keeps that setting. One bundle alone is an "ensemble" of one.

    python benchmarks/bench_face_ensemble.py A/face_cnn_bundle B/face_cnn_bundle --out E/face_cnn_bundle
    python benchmarks/bench_face_ensemble.py A/face_cnn_bundle --tta affine --out A_tta/face_cnn_bundle
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

from bench_face_cnn import load_split, print_confusion  # noqa: E402

from emonets.evaluation import metrics_dict  # noqa: E402
from emonets.specialists.face_cnn.model import FaceCNN  # noqa: E402
from emonets.specialists.face_cnn.net import TTA_VIEWS  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("bundles", type=Path, nargs="+")
    ap.add_argument("--data", type=Path, default=Path(os.environ.get("EMONETS_SHARED_DATA", REPO.parent / "shared" / "data")) / "fer2013")
    ap.add_argument("--out", type=Path, default=None, help="write the ensemble bundle here")
    ap.add_argument("--tta", choices=sorted(TTA_VIEWS), default=None,
                    help="test-time views for the members and the ensemble (default: the first bundle's)")
    args = ap.parse_args()

    x_val, y_val = load_split(args.data, "val", REPO / "emonets-store" / "bench")
    models = [FaceCNN.load(b) for b in args.bundles]
    tta = args.tta or models[0].config.tta
    members, member_probs = [], []
    for path, model in zip(args.bundles, models):
        started = time.perf_counter()
        member_probs.append(model.predict_frames(x_val, tta=tta))
        acc = float((member_probs[-1].argmax(1) == y_val).mean())
        members.append({"bundle": str(path), "accuracy": acc, "params": model.metrics_.get("params"),
                        "widths": list(model.config.widths), "convs": list(model.config.convs),
                        "seconds": round(time.perf_counter() - started, 2)})
        print(f"member {path}: accuracy {acc:.4f} ({model.metrics_.get('params')} parameters)")
    ensemble = FaceCNN.ensemble(models)
    ensemble.with_settings({"tta": tta})
    # the ensemble's frame probabilities are its members' mean (FaceCNN.predict_frames; tested),
    # so the members' predictions are reused rather than computed a second time
    probs = np.mean(member_probs, axis=0)
    predict_seconds = sum(m["seconds"] for m in members)
    metrics = metrics_dict(y_val, probs.argmax(1))
    if args.out:
        ensemble.metrics_["val"] = metrics
        ensemble.save(args.out)

    print(f"\nensemble of {len(models)} on FER-2013 val ({len(y_val)} faces): accuracy {metrics['accuracy']:.4f}, "
          f"macro-F1 {metrics['macro_f1']:.4f}; {1000 * predict_seconds / len(y_val):.2f} ms a face "
          f"({2 * len(TTA_VIEWS[tta])} views each, tta={tta})")
    print_confusion(metrics["confusion"])
    # what each member adds: the ensemble's accuracy without it (same predictions, no extra cost)
    without = [float((np.mean(member_probs[:i] + member_probs[i + 1:], axis=0).argmax(1) == y_val).mean())
               for i in range(len(models))] if len(models) > 1 else []
    for path, acc in zip(args.bundles, without):
        print(f"without {path}: accuracy {acc:.4f} ({metrics['accuracy'] - acc:+.4f} from it)")
    print(json.dumps({"accuracy": metrics["accuracy"], "macro_f1": metrics["macro_f1"], "n": metrics["n"],
                      "confusion": metrics["confusion"], "members": members, "without_member": without,
                      "params": ensemble.metrics_["params"], "tta": tta,
                      "ms_per_face": round(1000 * predict_seconds / len(y_val), 3),
                      "bundle": str(args.out) if args.out else None}))


if __name__ == "__main__":
    main()
