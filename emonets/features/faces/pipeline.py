"""Per clip: sampled grey frames -> main face track -> 68 landmarks -> aligned faces (table `faces`).

Every sampled frame gets a row; frames without the main face have ``found=False`` and no face
bytes, so a clip's rows always cover its whole length. Still face crops (FER-2013) take the
short path in ``faces_from_images``: they already are faces in FER's framing.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from emonets.features.faces.align import align_face
from emonets.features.faces.config import FaceConfig
from emonets.features.faces.track import FaceTracker, TrackedFrame
from emonets.media.video import iter_frames

FACE_COLUMNS = ["clip_id", "frame", "t", "found", "face", "size", "landmarks"]


@dataclass
class FaceResult:
    faces: pd.DataFrame                       # rows of the catalog `faces` table
    stats: dict = field(default_factory=dict)  # frames, found, found_rate, second_faces_seen, seconds, ...


def extract_faces(path: Path | str, *, clip_id: str, config: FaceConfig = FaceConfig()) -> FaceResult:
    """Aligned faces of a video's main face, one row per sampled frame (found=False where absent).

    Streams frames (memory bounded by ``detect_every`` frames). Raises MediaError / NoVideoError
    for unreadable files or files without video; a clip where no face is ever found returns
    only found=False rows (the caller records that as a problem).
    """
    from emonets.features.faces.detect import FaceDetector

    detector = FaceDetector(config.detector, target_face_px=config.target_face_px,
                            search_margin=config.search_margin, search_upsample=config.search_upsample)
    tracker = FaceTracker(detector, detect_every=config.detect_every, refine=config.refine,
                          reacquire_after=config.reacquire_after)
    rows: list[tuple] = []
    started = time.perf_counter()
    for frame in iter_frames(path, fps=config.fps, gray=True, max_frames=config.max_frames):
        grey = np.ascontiguousarray(frame.image)
        rows.extend(_row(clip_id, f, config.size) for f in tracker.push(frame.index, frame.t, grey))
    rows.extend(_row(clip_id, f, config.size) for f in tracker.finish())
    stats = tracker.summary()
    stats["detector_calls"] = detector.calls
    stats["seconds"] = round(time.perf_counter() - started, 3)
    return FaceResult(_table(rows), stats)


def _row(clip_id: str, f: TrackedFrame, size: int) -> tuple:
    if f.points is None:
        return (clip_id, f.index, f.t, False, b"", size, [])
    face = align_face(f.image, f.points, size=size)
    return (clip_id, f.index, f.t, True, face.tobytes(), size, f.points.reshape(-1).tolist())


def _table(rows: list[tuple]) -> pd.DataFrame:
    df = pd.DataFrame(rows, columns=FACE_COLUMNS)
    return df.astype({"clip_id": str, "frame": "int32", "t": "float64", "found": bool, "size": "int32"})


def faces_from_images(images: np.ndarray, clip_ids: list[str], *, config: FaceConfig = FaceConfig()) -> FaceResult:
    """Still face crops (FER-2013's (N, 48, 48) uint8) as `faces` rows: frame 0, found, no landmarks.

    They already are faces in FER's framing, the template video faces are aligned to; other
    sizes are resized (antialiased) to ``config.size``.
    """
    images = np.asarray(images)
    if images.ndim != 3 or len(images) != len(clip_ids):
        raise ValueError(f"need (N, H, W) images for {len(clip_ids)} clip ids, got shape {images.shape}")
    started = time.perf_counter()
    rows = []
    for clip_id, img in zip(clip_ids, images):
        img = img.astype(np.uint8, copy=False)
        if img.shape != (config.size, config.size):
            img = np.asarray(Image.fromarray(img).resize((config.size, config.size), Image.BILINEAR))
        rows.append((clip_id, 0, 0.0, True, img.tobytes(), config.size, []))
    n = len(rows)
    stats = {"frames": n, "found": n, "found_rate": 1.0 if n else 0.0, "second_faces_seen": 0,
             "seconds": round(time.perf_counter() - started, 3)}
    return FaceResult(_table(rows), stats)
