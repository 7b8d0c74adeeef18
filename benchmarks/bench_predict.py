"""How long `emonets predict` of one short clip takes, end to end, and where the time goes.

End to end: the `emonets` command as a user runs it (a fresh process, no Prefect API), on a
store that has never seen the clip (so its faces, MFCC and motion are extracted), then again
on the same store (the clip's result is reused). The split, measured one part at a time in
a fresh process per video (first-use costs included, as in the command): start-up (the command's imports), decode (every frame, nothing else), faces
(decode + detection + landmarks + alignment at the stage's rate), audio (MFCC, pitch
included), motion blocks, model load and the model's prediction. In the command, faces run
beside audio + motion in two guarded children while the model loads, so the parts add up to
more than the wall time. JSON last line.

    python benchmarks/bench_predict.py                                   # the shipped model
    python benchmarks/bench_predict.py --model emonets-store/models/fused  # a fused model
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
SHARED = Path(os.environ.get("EMONETS_SHARED_DATA", REPO.parent / "shared" / "data"))
DEFAULT_VIDEOS = [SHARED / "talking-faces" / "video-retalking_face_2.mp4",
                  SHARED / "talking-faces" / "video-retalking_face_3.mp4"]


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}


def wall(cmd: list[str]) -> tuple[float, subprocess.CompletedProcess]:
    started = time.perf_counter()
    done = subprocess.run(cmd, cwd=REPO, env=_env(), capture_output=True, text=True, timeout=600)
    return time.perf_counter() - started, done


def end_to_end(video: Path, model: Path, repeats: int) -> dict:
    emonets = str(Path(sys.executable).with_name("emonets"))
    fresh, again, label = [], [], None
    for _ in range(repeats):
        with tempfile.TemporaryDirectory(prefix="bench-predict-") as store:
            cmd = [emonets, "predict", str(video), "--model", str(model), "--store", store, "--json"]
            seconds, done = wall(cmd)
            if done.returncode != 0:
                raise SystemExit(f"predict failed ({done.returncode}): {done.stderr[-2000:]}")
            fresh.append(seconds)
            label = json.loads(done.stdout.strip().splitlines()[-1])["label"]
            seconds, done = wall(cmd)
            again.append(seconds)
    return {"first_s": round(statistics.median(fresh), 2), "first_all_s": [round(s, 2) for s in fresh],
            "cached_s": round(statistics.median(again), 2), "label": label}


def split(video: Path, model_path: Path) -> dict:
    """Each part alone, in one fresh process per video (so every part pays its first-use costs,
    as the command does: detector and model loads, imports); the start-up in another."""
    cmd = [sys.executable, __file__, "--split-only", "--video", str(video), "--model", str(model_path)]
    seconds, done = wall(cmd)
    if done.returncode != 0:
        raise SystemExit(f"split failed ({done.returncode}): {done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def split_here(video: Path, model_path: Path) -> dict:
    """The split's parts, timed one after another in this process."""
    import pandas as pd

    from emonets.features.extraction import default_config, run_faces, run_mfcc, run_motion, run_mouths, work_units
    from emonets.ingest_store import ingest_into_store
    from emonets.features.jit_cache import ensure_warm
    from emonets.predict import load_model, predict_clips
    from emonets.media.video import iter_frames

    out: dict[str, float] = {}
    out["startup_s"], _ = wall([sys.executable, "-c", "import cli.main"])
    ensure_warm()
    with tempfile.TemporaryDirectory(prefix="bench-split-") as tmp:
        manifest = Path(tmp) / "request.csv"
        manifest.write_text(f"path,label,split\n{video},,test\n")
        t = time.perf_counter()
        from data_catalog import Store

        summary = ingest_into_store(str(manifest), tmp, "csv", allow_outside=True, keep_copies=True)
        clips = Store(tmp).read("clips", partitions=[summary["partition"]])
        out["ingest_s"] = time.perf_counter() - t
    unit = work_units(clips)[0]
    t = time.perf_counter()
    frames = sum(1 for _ in iter_frames(str(video)))
    out["decode_s"] = time.perf_counter() - t
    tables = {}
    for stage, fn in (("faces", run_faces), ("mfcc", run_mfcc), ("motion", run_motion)):
        t = time.perf_counter()
        tables[stage] = fn(unit, default_config(stage)).table
        out[f"{stage}_s"] = time.perf_counter() - t
    t = time.perf_counter()
    tables["mouths"] = run_mouths(unit, default_config("mouths"), tables["faces"]).table
    out["mouths_s"] = time.perf_counter() - t
    tables["motion_blocks"] = tables.pop("motion")
    t = time.perf_counter()
    model = load_model(model_path)
    out["model_load_s"] = time.perf_counter() - t
    t = time.perf_counter()
    predict_clips(model, clips, {k: pd.DataFrame(v) for k, v in tables.items()})
    out["model_predict_s"] = time.perf_counter() - t
    result = {k: round(v, 3) for k, v in out.items()}
    result["frames"] = frames
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", type=Path, default=None,
                    help="the bundle predict uses (default: the shipped one, what a fresh install predicts with)")
    ap.add_argument("--video", type=Path, action="append", help="clips to time (default: two 5-s talking faces)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--split-only", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.model is None:
        from emonets.release import shipped

        args.model = shipped("fused") or shipped("face_cnn")
    if args.split_only:
        print(json.dumps(split_here(args.video[0], args.model)))
        return
    rows = {}
    for video in args.video or DEFAULT_VIDEOS:
        rows[video.name] = {**end_to_end(video, args.model, args.repeats), "split": split(video, args.model)}
        r = rows[video.name]
        s = r["split"]
        print(f"{video.name}: predict {r['first_s']:.2f} s (runs {r['first_all_s']}), again {r['cached_s']:.2f} s; "
              f"start-up {s['startup_s']:.2f}, decode {s['decode_s']:.2f} ({s['frames']} frames), faces "
              f"{s['faces_s']:.2f}, audio {s['mfcc_s']:.2f}, motion {s['motion_s']:.2f}, mouths {s['mouths_s']:.2f}, "
              f"model load {s['model_load_s']:.2f}, predict {s['model_predict_s']:.2f} s", flush=True)
    print(json.dumps({"model": str(args.model), "cores": os.cpu_count(), "videos": rows,
                      "worst_first_s": max(r["first_s"] for r in rows.values())}))


if __name__ == "__main__":
    main()
