"""Fingerprints of what the pipeline makes from the shared clips, to compare two versions of the code.

A refactor must not change behaviour: run this on the code before and after (a git worktree of
the older commit, the same venv) and compare the JSON lines. It ingests the shared CREMA-D and
talking-face clips into a fresh store, extracts every stage in this process's guarded children,
and hashes each feature table (rows sorted by their keys, every column); then it predicts with
the given bundles (default: the shipped face model) and hashes the probabilities. BLAS is held to
one thread (its sums are ordered differently with more, which moves MFCC values by ~1e-5).

    python benchmarks/bench_same_outputs.py [--model BUNDLE ...]
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import hashlib  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
SHARED = Path(os.environ.get("EMONETS_SHARED_DATA", REPO.parent / "shared" / "data"))
TABLES = {"faces": ["clip_id", "frame"], "mouths": ["clip_id", "frame"], "mfcc": ["clip_id", "frame"],
          "motion_blocks": ["clip_id", "block"]}


def table_hash(frame) -> str:
    """sha256 over every cell of the rows in key order (lists and bytes as their exact values)."""
    digest = hashlib.sha256()
    for column in frame.columns:
        digest.update(column.encode() + b"\0")
        for value in frame[column]:
            if isinstance(value, (bytes, bytearray, memoryview)):
                digest.update(bytes(value))
            elif hasattr(value, "tolist"):
                digest.update(repr(value.tolist()).encode())
            else:
                digest.update(repr(value).encode())
            digest.update(b"\1")
    return digest.hexdigest()[:16]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", action="append", type=Path, help="bundles to predict with (default: the shipped one)")
    args = ap.parse_args()
    from data_catalog import Store
    from emonets.features.local import extract_clips
    from emonets.ingest_store import ingest_into_store
    from emonets.predict import load_model, predict_clips

    videos = sorted((SHARED / "crema-d").glob("*.flv")) + sorted((SHARED / "talking-faces").glob("video-retalking_face_[12].mp4"))
    models = args.model or [REPO / "emonets" / "release" / "face_cnn"]
    out: dict = {"videos": len(videos), "tables": {}, "predictions": {}}
    with tempfile.TemporaryDirectory(prefix="same-outputs-") as tmp:
        manifest = Path(tmp) / "clips.csv"
        manifest.write_text("path,label,split\n" + "".join(f"{v},,test\n" for v in videos))
        ingested = ingest_into_store(str(manifest), tmp, "csv", allow_outside=True, keep_copies=True)
        store = Store(tmp)
        clips = store.read("clips", partitions=[ingested["partition"]])
        summary = extract_clips(store, clips, ["faces", "mouths", "mfcc", "motion"])
        out["extraction"] = {k: summary[k] for k in ("computed", "failed")}
        tables = {}
        for table, keys in TABLES.items():
            tables[table] = store.read(table).sort_values(keys, kind="stable").reset_index(drop=True)
            out["tables"][table] = {"rows": len(tables[table]), "sha256": table_hash(tables[table])}
        for model_path in models:
            results = predict_clips(load_model(model_path), clips, tables)
            probs = [[r["clip_id"], r["label"], [round(float(p), 7) for p in r["probabilities"].values()]]
                     for r in sorted(results, key=lambda r: r["clip_id"])]
            out["predictions"][model_path.name] = hashlib.sha256(json.dumps(probs).encode()).hexdigest()[:16]
    print(json.dumps(out))


if __name__ == "__main__":
    main()
