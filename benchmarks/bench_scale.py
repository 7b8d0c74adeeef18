"""Scale: how `train-all`'s wall time and peak memory grow with the number of clips.

For each size: compose a set of about that many clips (real FER-2013 faces + RAVDESS speech;
beyond the 928 distinct voice pairings, each utterance voices several clips with other faces:
``reuse_speech``, recorded in the set's compose.json), then run ``emonets train-all`` on it in a
new store as a user would (a subprocess), sampling the resident memory of that process and of
all its children. Per size it prints the wall time of each phase (ingest, extract, each
specialist, fuse, report), the peak RSS of the process tree and of the flow process alone, each
specialist's own peak, and clips per minute; then the growth exponent b of time ~ clips^b and
peak memory ~ clips^b fitted by least squares on the logs, and the ratio of the largest to the
smallest size's peak. One JSON object is the last line.

    python benchmarks/bench_scale.py --sizes 200,1000
    python benchmarks/bench_scale.py --sizes 14,28 --max-seconds 1 --max-epochs 1   # a quick look

The face specialist starts from the shipped FER-2013 ConvNet (its SVM stage learns from the
clips), as in the demo; the other specialists train from scratch with their default settings.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


# -- memory of a process tree ---------------------------------------------------------------
def _rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def _descendants(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


class TreeSampler(threading.Thread):
    """Peak RSS of a process and (summed) of it with all its descendants, every ``interval`` s."""

    def __init__(self, pid: int, interval: float = 0.5):
        super().__init__(daemon=True)
        self.pid, self.interval = pid, interval
        self.peak_tree_mb = self.peak_main_mb = 0.0
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(self.interval):
            self.peak_main_mb = max(self.peak_main_mb, _rss_mb(self.pid))
            self.peak_tree_mb = max(self.peak_tree_mb, sum(_rss_mb(p) for p in _descendants(self.pid)))


# -- sets of a given size -------------------------------------------------------------------
def plan_for(size: int, faces, speech) -> tuple[int | None, int, int]:
    """(per_class, reuse_speech, clips) of the smallest composed set with at least ``size`` clips."""
    from emonets.datasets.compose.plan import ComposeConfig, plan_clips
    from emonets.labels import EMOTIONS

    classes = [c for c in EMOTIONS if c in faces and c in speech]

    def count(per_class: int | None, reuse: int) -> int:
        return len(plan_clips(faces, speech, classes=classes, per_class=per_class, seed=0, split="all",
                              config=ComposeConfig(), reuse_speech=reuse)[0])

    reuse = 1
    while count(None, reuse) < size:
        if count(None, reuse + 1) == count(None, reuse):
            raise SystemExit(f"the sources allow at most {count(None, reuse)} clips")
        reuse += 1
    lo, hi = 1, 4096
    while lo < hi:  # the smallest per_class reaching the size
        mid = (lo + hi) // 2
        lo, hi = (mid + 1, hi) if count(mid, reuse) < size else (lo, mid)
    if count(lo, reuse) < size:  # more than 4,096 a class and split: no cap
        return None, reuse, count(None, reuse)
    return lo, reuse, count(lo, reuse)


def run_size(size: int, args, faces, speech) -> dict:
    from emonets.datasets.compose.dataset import compose_dataset
    from emonets.release import shipped_model

    per_class, reuse, planned = plan_for(size, faces, speech)
    folder = args.out / f"{size}"
    started = time.perf_counter()
    composed = compose_dataset(args.shared / "fer2013", args.shared / "ravdess-speech", folder / "clips",
                               per_class=per_class, reuse_speech=reuse, seed=0, workers=2,
                               max_seconds=args.max_seconds)
    compose_s = time.perf_counter() - started
    store = folder / f"store-{time.strftime('%Y%m%d-%H%M%S')}"  # a new store: nothing is reused
    config = {"face_cnn": {"cnn_bundle": str(shipped_model("face_cnn"))}}
    cmd = [str(Path(sys.executable).with_name("emonets")), "train-all", str(folder / "clips"), "--store", str(store),
           "--config", json.dumps(config)]
    if args.max_epochs:
        cmd += ["--max-epochs", str(args.max_epochs)]
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "PREFECT_LOGGING_LEVEL": "WARNING"})
    sampler = TreeSampler(proc.pid)
    sampler.start()
    output = proc.communicate()[0]
    wall = time.perf_counter() - started
    sampler.done.set()
    sampler.join()
    last = output.strip().splitlines()[-1] if output.strip() else ""
    if proc.returncode != 0 or not last.startswith("{"):
        raise SystemExit(f"train-all failed at size {size} (exit {proc.returncode}):\n{output[-4000:]}")
    summary = json.loads(last)
    clips = summary["clips"]
    return {
        "size": size, "clips": clips, "planned_clips": planned, "per_class": per_class, "reuse_speech": reuse,
        "media_seconds": composed["media_seconds"], "compose_seconds": round(compose_s, 1),
        "wall_seconds": round(wall, 1), "clips_per_minute": round(60 * clips / wall, 1),
        "phase_seconds": summary.get("phase_seconds", {}),
        "peak_rss_tree_mb": round(sampler.peak_tree_mb), "peak_rss_flow_mb": round(sampler.peak_main_mb),
        "specialist_peak_rss_mb": {n: s.get("peak_rss_mb") for n, s in summary["specialists"].items()},
        "specialist_status": {n: s["status"] for n, s in summary["specialists"].items()},
        "test_accuracy": summary.get("test_accuracy", {}), "store": str(store),
    }


def growth_exponent(xs: list[float], ys: list[float]) -> float | None:
    """Least-squares slope of log y on log x (None with fewer than two distinct sizes)."""
    pts = [(math.log(x), math.log(y)) for x, y in zip(xs, ys) if x > 0 and y and y > 0]
    if len({p[0] for p in pts}) < 2:
        return None
    mx, my = sum(p[0] for p in pts) / len(pts), sum(p[1] for p in pts) / len(pts)
    return round(sum((a - mx) * (b - my) for a, b in pts) / sum((a - mx) ** 2 for a, _ in pts), 3)


def main() -> None:
    from emonets.datasets.compose.sources import scan_faces, scan_speech

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="200,1000", help="comma-separated clip counts")
    ap.add_argument("--out", type=Path, default=REPO / "emonets-store" / "bench" / "scale")
    ap.add_argument("--shared", type=Path, default=Path(os.environ.get("EMONETS_SHARED_DATA",
                                                                          REPO.parent / "shared" / "data")))
    ap.add_argument("--max-seconds", type=float, default=None, help="cut clips to this length (quick looks only)")
    ap.add_argument("--max-epochs", type=int, default=None, help="cap training epochs (quick looks only)")
    args = ap.parse_args()
    sizes = sorted(int(s) for s in args.sizes.split(","))
    faces, speech = scan_faces(args.shared / "fer2013")[0], scan_speech(args.shared / "ravdess-speech")[0]
    rows = []
    for size in sizes:
        row = run_size(size, args, faces, speech)
        rows.append(row)
        phases = ", ".join(f"{k} {v:.0f}s" for k, v in row["phase_seconds"].items())
        print(f"{row['clips']:>6} clips: {row['wall_seconds']:>7.0f} s ({row['clips_per_minute']} clips/min), "
              f"peak RSS {row['peak_rss_tree_mb']} MB (flow process {row['peak_rss_flow_mb']} MB); {phases}",
              flush=True)
    clips = [r["clips"] for r in rows]
    result = {
        "name": "scale", "sizes": rows,
        "time_exponent": growth_exponent(clips, [r["wall_seconds"] for r in rows]),
        "memory_exponent": growth_exponent(clips, [r["peak_rss_tree_mb"] for r in rows]),
        "flow_memory_exponent": growth_exponent(clips, [r["peak_rss_flow_mb"] for r in rows]),
        "phase_time_exponents": {p: growth_exponent(clips, [r["phase_seconds"].get(p) for r in rows])
                                 for p in rows[0]["phase_seconds"]},
        "peak_ratio_largest_to_smallest": round(rows[-1]["peak_rss_tree_mb"] / max(1, rows[0]["peak_rss_tree_mb"]), 2),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
