"""Face stage speed and quality against the naive loop, on the real shared clips.

Timing is CPU time of this process (decoder threads included), the fair measure on a machine
shared with other work (the target is stated for one core); wall-clock figures are printed too.

Naive loop (the reference): face_recognition HOG with its default upsample=1 on the full-resolution
RGB frame, every sampled frame, plus 68 landmarks for every box. Fast: ``extract_faces`` with the
default FaceConfig (same sampled fps). Both decode their own frames (timed: the naive loop
decodes RGB, the fast one grey). Per clip: frames/s, face-found rate, and landmark agreement on
frames where both found a face: the mean distance over the 68 points to the naive landmarks of
the naive box that best matches, divided by the naive inter-ocular distance (eye centres).

    nice -n 10 python benchmarks/bench_faces.py [--fps 10] [--limit N] [--montage faces.png]
    python benchmarks/bench_faces.py --derive-template [--n 600]   # re-derive align.py's template

Prints a table, then ONE JSON object as the last line.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import random
import resource
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from emonets.features.faces import FaceConfig, extract_faces  # noqa: E402
from emonets.features.faces.align import ANCHORS, FER_SIZE, anchor_points  # noqa: E402
from emonets.media.video import iter_frames  # noqa: E402
from emonets.features.rows import clip_array

SHARED = Path(os.environ.get("EMONETS_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


def clips() -> list[Path]:
    found = glob.glob(str(SHARED / "crema-d" / "*.flv")) + glob.glob(str(SHARED / "talking-faces" / "*.mp4"))
    return sorted(map(Path, found))


def _fr():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import face_recognition
        from face_recognition import api
    return face_recognition, api


def naive(path: Path, fps: float) -> tuple[list[list[np.ndarray]], float, float]:
    """Per sampled frame: the landmarks (68, 2) of every face the naive loop finds; CPU s, wall s."""
    fr, api = _fr()
    out = []
    c0, t0 = time.process_time(), time.perf_counter()
    for frame in iter_frames(path, fps=fps):
        # dlib misreads PyAV's row-padded (non-contiguous) frames: ~half the frames of a 700 px
        # clip lose their face. A contiguous copy is what a correct naive loop hands it.
        image = np.ascontiguousarray(frame.image)
        boxes = fr.face_locations(image, number_of_times_to_upsample=1, model="hog")
        shapes = api._raw_face_landmarks(image, boxes) if boxes else []
        out.append([np.array([(p.x, p.y) for p in s.parts()], np.float64) for s in shapes])
    return out, time.process_time() - c0, time.perf_counter() - t0


def iod(points: np.ndarray) -> float:
    a = anchor_points(points)
    return float(np.linalg.norm(a[1] - a[0]))


def compare(path: Path, config: FaceConfig) -> dict:
    ref, naive_s, naive_wall = naive(path, config.fps)
    c0, t0 = time.process_time(), time.perf_counter()
    result = extract_faces(path, clip_id=path.stem, config=config)
    fast_s, fast_wall = time.process_time() - c0, time.perf_counter() - t0
    faces = result.faces.sort_values("frame")
    n = len(ref)
    diffs, both, extra = [], 0, 0
    for row in faces.itertuples(index=False):
        naive_faces = ref[row.frame] if row.frame < n else []
        if not row.found or not naive_faces:
            extra += bool(row.found and not naive_faces)
            continue
        pts = np.asarray(row.landmarks, np.float64).reshape(68, 2)
        best = min(naive_faces, key=lambda q: np.linalg.norm(q - pts, axis=1).mean())
        diffs.append(np.linalg.norm(best - pts, axis=1).mean() / iod(best))
        both += 1
    return {
        "clip": path.name, "frames_naive": n, "frames_fast": len(faces),
        "naive_s": naive_s, "fast_s": fast_s, "naive_wall": naive_wall, "fast_wall": fast_wall,
        "found_naive": sum(bool(r) for r in ref), "found_fast": int(faces["found"].sum()),
        "found_fast_not_naive": extra, "second_faces_naive": sum(len(r) > 1 for r in ref),
        "second_faces_fast": result.stats.get("second_faces_seen", 0), "lost": result.stats.get("lost", 0),
        "diffs": diffs, "faces": faces,
    }


def run(args: argparse.Namespace) -> dict:
    config = FaceConfig(fps=args.fps)
    paths = clips()[: args.limit] if args.limit else clips()
    if not paths:
        raise SystemExit(f"no clips under {SHARED}")
    # Load both sides' models before timing (one-off per process, not per frame).
    _fr()
    extract_faces(paths[0], clip_id="warmup", config=FaceConfig(fps=args.fps, max_frames=1))
    rows = []
    print(f"{'clip':36s} {'frames':>6s} {'naive fps':>9s} {'fast fps':>9s} {'x':>5s} "
          f"{'found naive':>11s} {'found fast':>10s} {'lm diff med':>11s} {'p90':>6s} {'max':>6s}")
    for path in paths:
        r = compare(path, config)
        rows.append(r)
        d = np.array(r["diffs"]) if r["diffs"] else np.array([np.nan])
        print(f"{r['clip']:36s} {r['frames_naive']:6d} {r['frames_naive'] / r['naive_s']:9.1f} "
              f"{r['frames_fast'] / r['fast_s']:9.1f} {r['naive_s'] / r['fast_s']:5.1f} "
              f"{r['found_naive'] / r['frames_naive']:11.3f} {r['found_fast'] / r['frames_fast']:10.3f} "
              f"{np.median(d):11.4f} {np.percentile(d, 90):6.3f} {d.max():6.3f}", flush=True)
    frames_n = sum(r["frames_naive"] for r in rows)
    frames_f = sum(r["frames_fast"] for r in rows)
    naive_fps = frames_n / sum(r["naive_s"] for r in rows)
    fast_fps = frames_f / sum(r["fast_s"] for r in rows)
    naive_wall_fps = frames_n / sum(r["naive_wall"] for r in rows)
    fast_wall_fps = frames_f / sum(r["fast_wall"] for r in rows)
    all_d = np.concatenate([r["diffs"] for r in rows if r["diffs"]])
    summary = {
        "benchmark": "faces", "fps_sampled": args.fps, "clips": len(rows), "frames": frames_n,
        "config": config.to_dict(),
        "timing": "frames per CPU-second of this process (decoding included); wall-clock figures beside",
        "naive_fps": round(naive_fps, 2), "fast_fps": round(fast_fps, 2), "speedup": round(fast_fps / naive_fps, 2),
        "naive_fps_wall": round(naive_wall_fps, 2), "fast_fps_wall": round(fast_wall_fps, 2),
        "speedup_wall": round(fast_wall_fps / naive_wall_fps, 2),
        "load_average": round(os.getloadavg()[0], 2),
        "found_rate_naive": round(sum(r["found_naive"] for r in rows) / frames_n, 4),
        "found_rate_fast": round(sum(r["found_fast"] for r in rows) / frames_f, 4),
        "found_fast_not_naive": sum(r["found_fast_not_naive"] for r in rows),
        "frames_compared": int(all_d.size),
        "median_landmark_diff_iod": round(float(np.median(all_d)), 4),
        "p90_landmark_diff_iod": round(float(np.percentile(all_d, 90)), 4),
        "max_landmark_diff_iod": round(float(all_d.max()), 4),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "per_clip": {
            r["clip"]: {
                "frames": r["frames_naive"],
                "naive_fps": round(r["frames_naive"] / r["naive_s"], 2),
                "fast_fps": round(r["frames_fast"] / r["fast_s"], 2),
                "found_rate_naive": round(r["found_naive"] / r["frames_naive"], 4),
                "found_rate_fast": round(r["found_fast"] / r["frames_fast"], 4),
                "found_fast_not_naive": r["found_fast_not_naive"],
                "second_faces_naive": r["second_faces_naive"], "second_faces_fast": r["second_faces_fast"],
                "median_landmark_diff_iod": round(float(np.median(r["diffs"])), 4) if r["diffs"] else None,
                "max_landmark_diff_iod": round(float(np.max(r["diffs"])), 4) if r["diffs"] else None,
            }
            for r in rows
        },
    }
    print(f"\noverall (per CPU-second): naive {naive_fps:.1f} frames/s, fast {fast_fps:.1f} frames/s, speedup "
          f"{summary['speedup']:.1f}x (wall clock: {naive_wall_fps:.1f} vs {fast_wall_fps:.1f}, "
          f"{summary['speedup_wall']:.1f}x); found {summary['found_rate_naive']:.3f} vs "
          f"{summary['found_rate_fast']:.3f}; "
          f"landmark diff median {summary['median_landmark_diff_iod']:.4f} IOD "
          f"(p90 {summary['p90_landmark_diff_iod']:.4f}, max {summary['max_landmark_diff_iod']:.4f})")
    if args.montage:
        save_montage(rows, Path(args.montage))
    return summary


def save_montage(rows: list[dict], target: Path, per_clip: int = 12) -> None:
    """A PNG: per clip, a row of evenly spaced aligned faces; last row FER-2013 samples."""
    from PIL import Image

    lines = []
    for r in rows:
        faces = clip_array("faces", r["faces"])
        if len(faces):
            idx = np.linspace(0, len(faces) - 1, per_clip).round().astype(int)
            lines.append(np.hstack(list(faces[idx])))
    fer = sorted(glob.glob(str(SHARED / "fer2013" / "train" / "*" / "*.jpg")))
    random.Random(1).shuffle(fer)
    lines.append(np.hstack([np.asarray(Image.open(p).convert("L").resize((48, 48))) for p in fer[:per_clip]]))
    Image.fromarray(np.vstack(lines)).resize((per_clip * 96, len(lines) * 96), Image.NEAREST).save(target)
    print(f"montage written to {target}")


def derive_template(n: int) -> dict:
    """Mean anchor positions of the dlib 68-point predictor on FER-2013 train images (48 px frame)."""
    from PIL import Image

    from emonets.features.faces.detect import FaceDetector

    det = FaceDetector("hog")
    files = sorted(glob.glob(str(SHARED / "fer2013" / "train" / "*" / "*.jpg")))
    random.Random(0).shuffle(files)
    up, pad = 4, 32
    anchors = []
    for f in files[:n]:
        img = np.asarray(Image.open(f).convert("L").resize((48 * up, 48 * up), Image.BICUBIC))
        img = np.ascontiguousarray(np.pad(img, pad, mode="edge"))
        boxes = det.detect(img)
        if not boxes:
            continue
        box = max(boxes, key=lambda b: b.area)
        pts = (det.landmarks(img, box).astype(np.float64) - pad + 0.5) / up - 0.5  # pixel-index coords
        anchors.append(anchor_points(pts))
    a = np.array(anchors)
    mean, sd = a.mean(0), a.std(0)
    print(f"{len(a)} of {n} FER-2013 images had a detection")
    for name, m, s in zip(ANCHORS, mean, sd):
        print(f"  {name:10s} ({m[0]:.2f}, {m[1]:.2f})  sd ({s[0]:.2f}, {s[1]:.2f})")
    return {"benchmark": "face_template", "images": n, "used": len(a), "size": FER_SIZE,
            "template": {k: [round(float(v), 2) for v in m] for k, m in zip(ANCHORS, mean)},
            "sd": {k: [round(float(v), 2) for v in s] for k, s in zip(ANCHORS, sd)}}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--fps", type=float, default=FaceConfig().fps)
    p.add_argument("--limit", type=int, default=0, help="only the first N clips")
    p.add_argument("--montage", default="", help="save a PNG of aligned faces (and FER samples)")
    p.add_argument("--derive-template", action="store_true")
    p.add_argument("--n", type=int, default=600, help="FER images for --derive-template")
    args = p.parse_args()
    summary = derive_template(args.n) if args.derive_template else run(args)
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
