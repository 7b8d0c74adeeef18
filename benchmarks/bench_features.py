"""Feature extraction end to end through the extract-features flow, on real shared clips.

Ingests the real videos (CREMA-D and the talking faces by default) into a fresh store, runs
every stage (full run), runs it again with nothing changed, then adds one clip (a copy under a
new name) and runs again. Reports clips per minute, the face-found rate, peak memory, and the
no-change and one-clip-added wall times as fractions of the full run. Prints a table, then one
JSON object as its last line.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")


def peak_rss_mb() -> float:
    """Peak resident memory of this process and of its finished children (the task workers)."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(own, children) / 1024


def main() -> None:
    from flows.extract_features import run_extract_features
    from tasks.ingest import ingest_root

    shared = Path(os.environ.get("EMONETS_SHARED_DATA", REPO.parent / "shared" / "data"))
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--runner", default="local", help="local | threads | dask")
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="emonets-bench-features-"))
    data = work / "videos"
    data.mkdir()
    sources = sorted((shared / "crema-d").glob("*.flv")) + sorted((shared / "talking-faces").glob("*.mp4"))
    for src in sources:  # links: the benchmark adds a clip without touching ../shared
        (data / src.name).symlink_to(src)
    store = str(work / "store")
    timings = {}
    try:
        def run(name: str) -> dict:
            ingest_root.fn(str(data), store, "videos")
            started = time.perf_counter()
            summary = run_extract_features(store, runner=args.runner)
            timings[name] = time.perf_counter() - started
            print(f"{name:>10}: {timings[name]:7.1f} s  computed {summary['computed']:3d}  cached {summary['cached']:3d}  "
                  f"failed {summary['failed']}  problems {summary['problems']}", flush=True)
            return summary

        full = run("full")
        again = run("no-change")
        shutil.copy(sources[0], data / f"added_{sources[0].name}")
        added = run("one-added")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    clips = full["clips"]
    result = {
        "clips": clips,
        "stages": full["stages"],
        "runner": args.runner,
        "full_seconds": round(timings["full"], 1),
        "clips_per_minute": round(clips / timings["full"] * 60, 2),
        "face_found_rate": full["face_found_rate"],
        "problems": full["problems"],
        "no_change_seconds": round(timings["no-change"], 1),
        "no_change_fraction": round(timings["no-change"] / timings["full"], 3),
        "no_change_computed": again["computed"],
        "one_added_seconds": round(timings["one-added"], 1),
        "one_added_fraction": round(timings["one-added"] / timings["full"], 3),
        "one_added_computed": added["computed"],
        "peak_rss_mb": round(peak_rss_mb(), 1),
    }
    print(f"{clips} clips: {result['clips_per_minute']} clips/min, face found {result['face_found_rate']}, "
          f"no-change {result['no_change_fraction']:.1%} and one-added {result['one_added_fraction']:.1%} of the full run, "
          f"peak memory {result['peak_rss_mb']} MB")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
