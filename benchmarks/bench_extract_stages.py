"""Where feature extraction's time goes on composed clips, per stage and per path.

Composes a small set (FER-2013 faces + RAVDESS speech, ``--per-class`` clips per class and split),
ingests it, then measures on the same clips:

1. each stage's own work, one clip at a time in this process (decode included; no store, no
   orchestration): seconds per clip for faces (+ its decode), mouths, mfcc (pitch included),
   motion blocks — the floor any orchestration adds to;
2. the in-process extractor (emonets.features.local: guarded children on two threads, no Prefect),
   what `predict` / `evaluate` use: wall seconds and clips per minute;
3. the `extract-features` flow on the process pool (`emonets extract --runner local`, a fresh
   store), what `train-all` uses: wall seconds and clips per minute.

The difference between 1 (divided by the two cores) and 2 is process and store overhead; between
2 and 3, Prefect's. One JSON object as the last line. BLAS held to one thread (as Dask workers run).

    python benchmarks/bench_extract_stages.py [--per-class 2]
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
SHARED = Path(os.environ.get("EMONETS_SHARED_DATA", REPO.parent / "shared" / "data"))
STAGES = ["faces", "mouths", "mfcc", "motion"]


def per_stage(store, clips) -> dict:
    """Seconds per clip of each stage's own work (mean over the clips), in this process."""
    from emonets.features.extraction import default_config, run_faces, run_mfcc, run_motion, run_mouths, work_units
    from emonets.features.jit_cache import ensure_warm

    ensure_warm()
    seconds: dict[str, list[float]] = {s: [] for s in STAGES}
    units = [u for u in work_units(clips) if u.media == "video"]
    run_faces(units[0], default_config("faces"))  # detector and landmark model loaded once, not timed
    for unit in units:
        t = time.perf_counter()
        faces = run_faces(unit, default_config("faces")).table
        seconds["faces"].append(time.perf_counter() - t)
        t = time.perf_counter()
        run_mouths(unit, default_config("mouths"), faces)
        seconds["mouths"].append(time.perf_counter() - t)
        for stage, fn in (("mfcc", run_mfcc), ("motion", run_motion)):
            t = time.perf_counter()
            fn(unit, default_config(stage))
            seconds[stage].append(time.perf_counter() - t)
    out = {s: round(statistics.mean(v), 3) for s, v in seconds.items()}
    out["total"] = round(sum(out.values()), 3)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--per-class", type=int, default=2, help="composed clips per class and split")
    ap.add_argument("--seconds", type=float, default=None, help="cut each composed clip to this length")
    args = ap.parse_args()
    from data_catalog import Store
    from emonets.datasets.compose.dataset import compose_dataset
    from emonets.features.local import extract_clips
    from emonets.ingest_store import ingest_into_store

    result: dict = {"cores": os.cpu_count()}
    with tempfile.TemporaryDirectory(prefix="bench-stages-") as tmp:
        t = time.perf_counter()
        composed = compose_dataset(SHARED / "fer2013", SHARED / "ravdess-speech", Path(tmp) / "composed",
                                   per_class=args.per_class, max_seconds=args.seconds, workers=2)
        result["compose_s"] = round(time.perf_counter() - t, 1)
        root = str(Path(tmp) / "composed")
        store = Store(Path(tmp) / "inproc")
        ingested = ingest_into_store(root, str(store.root))
        clips = store.read("clips", partitions=[ingested["partition"]])
        n = len(clips)
        result["clips"] = n
        result["mean_clip_s"] = round(float(clips["duration"].mean()), 2)
        result["per_stage_s_per_clip"] = per_stage(store, clips)

        t = time.perf_counter()
        summary = extract_clips(store, clips, STAGES)
        wall = time.perf_counter() - t
        result["in_process"] = {"wall_s": round(wall, 1), "clips_per_min": round(60 * n / wall, 1),
                                "computed": summary["computed"], "failed": summary["failed"]}

        flow_store = Path(tmp) / "flow"
        env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
        exe = str(Path(sys.executable).with_name("emonets"))
        subprocess.run([exe, "ingest", root, "--store", str(flow_store)], env=env, check=True,
                       capture_output=True, timeout=600)
        t = time.perf_counter()
        done = subprocess.run([exe, "extract", "--store", str(flow_store), "--runner", "local"], env=env,
                              capture_output=True, text=True, timeout=3600)
        wall = time.perf_counter() - t
        if done.returncode != 0:
            raise SystemExit(f"extract failed: {done.stderr[-2000:]}")
        flow = json.loads(done.stdout.strip().splitlines()[-1])
        result["flow_process_pool"] = {"wall_s": round(wall, 1), "clips_per_min": round(60 * n / wall, 1),
                                       "flow_s": flow.get("seconds"), "computed": flow["computed"],
                                       "failed": flow["failed"]}
        floor = result["per_stage_s_per_clip"]["total"] / 2
        result["floor_clips_per_min_on_2_cores"] = round(60 / floor, 1) if floor else None
    for key in ("per_stage_s_per_clip", "in_process", "flow_process_pool"):
        print(f"{key}: {result[key]}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
