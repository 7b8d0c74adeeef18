"""Face boxes and 68 landmarks with face_recognition's dlib models, on grey frames.

dlib's HOG detector scans an 80x80 window over an image pyramid, so it finds faces of ~80 px
and more (``upsample=1`` doubles the image first to reach ~40 px faces, at 4x the cost).
Searching a crop around the tracked face, resized so that face is ~100 px wide, is many times
cheaper than scanning the whole frame and loses nothing; shrinking a face below ~80 px loses
it. Landmarks are always taken on the full-resolution frame. The models are face_recognition's
own files (face_recognition_models), loaded once (the detector once per thread) and only
those used.
"""

from __future__ import annotations

import threading
import warnings
from functools import lru_cache

import numpy as np
from PIL import Image

from emonets.features.faces.config import DETECTORS
from emonets.features.faces.track import Box



_local = threading.local()


def _dlib():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # face_recognition_models imports pkg_resources
        import dlib
        import face_recognition_models
    return dlib, face_recognition_models


@lru_cache(maxsize=None)
def _predictor():
    """The 68-point landmark model, shared: its prediction keeps no state between calls."""
    dlib, frm = _dlib()
    return dlib.shape_predictor(frm.pose_predictor_model_location())


def _detector(kind: str):
    """A detector of ``kind`` for the calling thread (dlib's detectors must not be shared
    between threads; loading one takes ~1 s, so each thread keeps its own)."""
    if kind not in DETECTORS:
        raise ValueError(f"unknown face detector {kind!r}; choose from {', '.join(DETECTORS)}")
    cache = _local.__dict__.setdefault("detectors", {})
    if kind not in cache:
        dlib, frm = _dlib()
        cache[kind] = (dlib.get_frontal_face_detector() if kind == "hog"
                       else dlib.cnn_face_detection_model_v1(frm.cnn_face_detector_model_location()))
    return cache[kind]


class FaceDetector:
    """Detection (whole frame, or a scaled crop around a face) and landmarks on grey uint8 frames."""

    def __init__(self, kind: str = "hog", *, target_face_px: float = 100.0, search_margin: float = 0.5,
                 max_upscale: float = 2.0, search_upsample: int = 1, search_max_side: int = 480):
        self.kind = kind
        self.target_face_px = target_face_px
        self.search_margin = search_margin
        self.max_upscale = max_upscale
        self.search_upsample = search_upsample
        self.search_max_side = search_max_side
        self._detector, self._predictor = _detector(kind), _predictor()
        self._rectangle = _dlib()[0].rectangle
        self.calls = 0  # detector runs, for stats

    # -- detection -------------------------------------------------------------------------
    def detect(self, grey: np.ndarray, *, upsample: int = 0, scale: float = 1.0) -> list[Box]:
        """Faces in a whole grey frame, detected on a copy resized by ``scale``; full-res boxes."""
        img = _resize(grey, scale) if scale != 1.0 else grey
        sx, sy = grey.shape[1] / img.shape[1], grey.shape[0] / img.shape[0]
        return [Box(b.top * sy, b.right * sx, b.bottom * sy, b.left * sx, b.score)
                for b in self._run(img, upsample)]

    def search(self, grey: np.ndarray) -> list[Box]:
        """Faces anywhere, coarse to fine: a frame shrunk to ``search_max_side`` (big faces, cheap),
        then full resolution, then ``search_upsample`` (faces down to ~40 px). Stops at the first
        level that finds any face, so an easy frame costs a fraction of a full upsampled scan."""
        side = max(grey.shape)
        if side > self.search_max_side * 1.25:
            boxes = self.detect(grey, scale=self.search_max_side / side)
            if boxes:
                return boxes
        for upsample in range(0, self.search_upsample + 1):
            boxes = self.detect(grey, upsample=upsample)
            if boxes:
                return boxes
        return []

    def near(self, grey: np.ndarray, box: Box) -> list[Box]:
        """Faces in a crop around ``box`` (a margin of ``search_margin`` box widths each side),
        resized so a face the size of ``box`` is ``target_face_px`` wide; full-res boxes."""
        h, w = grey.shape
        m = self.search_margin * max(box.width, box.height)
        x0, y0 = int(max(0, np.floor(box.left - m))), int(max(0, np.floor(box.top - m)))
        x1, y1 = int(min(w, np.ceil(box.right + m))), int(min(h, np.ceil(box.bottom + m)))
        if x1 - x0 < 8 or y1 - y0 < 8:
            return []
        scale = float(min(self.max_upscale, self.target_face_px / max(box.width, 1.0)))
        crop = np.ascontiguousarray(grey[y0:y1, x0:x1])
        img = _resize(crop, scale) if abs(scale - 1.0) > 0.02 else crop
        sx, sy = (x1 - x0) / img.shape[1], (y1 - y0) / img.shape[0]
        return [Box(b.top * sy + y0, b.right * sx + x0, b.bottom * sy + y0, b.left * sx + x0, b.score)
                for b in self._run(img, 0)]

    def _run(self, img: np.ndarray, upsample: int) -> list[Box]:
        self.calls += 1
        img = np.ascontiguousarray(img)  # dlib misreads row-padded arrays (PyAV frames are)
        if self.kind == "cnn":
            found = self._detector(img, upsample)
            return [Box(d.rect.top(), d.rect.right(), d.rect.bottom(), d.rect.left(), float(d.confidence))
                    for d in found]
        rects, scores, _ = self._detector.run(img, upsample, 0.0)
        return [Box(r.top(), r.right(), r.bottom(), r.left(), float(s)) for r, s in zip(rects, scores)]

    # -- landmarks -------------------------------------------------------------------------
    def landmarks(self, grey: np.ndarray, box: Box) -> np.ndarray:
        """(68, 2) float32 landmark x, y in full-resolution pixels for the face in ``box``."""
        rect = self._rectangle(int(round(box.left)), int(round(box.top)),
                              int(round(box.right)), int(round(box.bottom)))
        shape = self._predictor(np.ascontiguousarray(grey), rect)
        return np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float32)


def _resize(grey: np.ndarray, scale: float) -> np.ndarray:
    """Antialiased resize of a grey image by ``scale`` (Pillow)."""
    h, w = grey.shape
    size = (max(1, int(round(w * scale))), max(1, int(round(h * scale))))
    return np.asarray(Image.fromarray(grey).resize(size, Image.BILINEAR))
