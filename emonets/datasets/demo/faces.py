"""The demo data's two bundled portraits: landmarks, normalised size, and the thin-plate-spline
warps that move their landmarks (expression, blink, talking).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from emonets.datasets.demo.templates import MIRROR

SOURCES = ("astronaut", "grace_hopper")
IOD_PX = 58.0  # inter-ocular distance the source photos are normalised to (face box ~125 px)


@dataclass
class _Face:
    """A portrait normalised to IOD_PX, its landmarks, and the class-independent fields."""

    image: np.ndarray            # H x W x 3 float32
    points: np.ndarray           # (68, 2) x, y
    ring: np.ndarray             # zero-displacement anchors around the face and at the borders
    centre: np.ndarray           # the ring's centre and radii (x, y)
    radii: np.ndarray
    region: tuple[int, int, int, int]  # y0, y1, x0, x1: where displacement fields are evaluated
    blink: np.ndarray            # backward fields over ``region``, (h, w, 2) in pixels (dx, dy)
    talk: np.ndarray
    talk_disp: np.ndarray        # forward landmark displacement of ``talk`` (68, 2) px


@lru_cache(maxsize=None)
def _landmarks(name: str) -> np.ndarray:
    """(68, 2) landmarks of the main face in a bundled photo (dlib HOG + 68-point model)."""
    from PIL import Image

    from emonets.features.faces.detect import FaceDetector

    grey = np.asarray(Image.fromarray(_photo(name)).convert("L"))
    det = FaceDetector("hog")
    boxes = det.search(grey)
    if not boxes:
        raise RuntimeError(f"demo data: no face found in the bundled photo {name!r}")
    return det.landmarks(grey, max(boxes, key=lambda b: b.area)).astype(np.float64)


@lru_cache(maxsize=None)
def portrait(identity: int) -> _Face:
    """Identity ``i``: photo ``i % 2``, mirrored for ``i >= 2`` (landmarks mirrored, not re-detected)."""
    from PIL import Image

    name, mirrored = SOURCES[identity % len(SOURCES)], identity >= len(SOURCES)
    photo, points = _photo(name), _landmarks(name)
    if mirrored:
        photo = np.ascontiguousarray(photo[:, ::-1])
        points = np.c_[photo.shape[1] - 1 - points[:, 0], points[:, 1]][MIRROR]
    scale = IOD_PX / np.linalg.norm(points[36:42].mean(0) - points[42:48].mean(0))
    h, w = photo.shape[:2]
    photo = np.asarray(Image.fromarray(photo).resize((round(w * scale), round(h * scale)), Image.LANCZOS))
    points = (points + 0.5) * scale - 0.5
    centre = points.mean(0)
    radii = (points.max(0) - points.min(0)) / 2 * 1.45
    ang = np.linspace(0, 2 * np.pi, 28, endpoint=False)
    ring = centre + np.c_[np.cos(ang), np.sin(ang)] * radii
    h, w = photo.shape[:2]
    ring = np.vstack([ring, [[0, 0], [w - 1, 0], [0, h - 1], [w - 1, h - 1]]])
    y0, x0 = np.maximum(np.floor(centre[::-1] - radii[::-1]).astype(int), 0)
    y1, x1 = np.minimum(np.ceil(centre[::-1] + radii[::-1]).astype(int) + 1, [h, w])
    face = _Face(photo.astype(np.float32), points, ring, centre, radii, (y0, y1, x0, x1), None, None, None)
    blink = np.zeros((68, 2))
    for up, low in ((37, 41), (38, 40), (43, 47), (44, 46)):
        blink[up, 1] = 0.6 * (points[low, 1] - points[up, 1])
    talk = np.zeros((68, 2))
    for k, dy in ((57, 0.07), (56, 0.065), (58, 0.065), (55, 0.04), (59, 0.04), (66, 0.075), (65, 0.07),
                  (67, 0.07), (8, 0.05), (7, 0.045), (9, 0.045), (6, 0.03), (10, 0.03)):
        talk[k, 1] = dy * IOD_PX
    face.blink, face.talk, face.talk_disp = warp_field(face, blink), warp_field(face, talk), talk
    return face


def _photo(name: str) -> np.ndarray:
    """RGB uint8 portrait from an installed package (no network)."""
    if name == "astronaut":
        from skimage.data import astronaut

        return astronaut()
    from matplotlib import cbook
    from PIL import Image

    with cbook.get_sample_data("grace_hopper.jpg") as fh:
        return np.asarray(Image.open(fh).convert("RGB"))


def warp_field(face: _Face, disp: np.ndarray) -> np.ndarray:
    """Backward displacement (h, w, 2) over ``face.region`` that carries landmarks by ``disp``.

    Thin-plate spline through the moved landmarks (value: where to sample, relative) and the
    fixed ring, so the face deforms smoothly and the background stays put.
    """
    from scipy.interpolate import RBFInterpolator

    moved = face.points + disp
    centres = np.vstack([moved, face.ring])
    values = np.vstack([-disp, np.zeros_like(face.ring)])
    spline = RBFInterpolator(centres, values, kernel="thin_plate_spline")
    y0, y1, x0, x1 = face.region
    yy, xx = np.mgrid[y0:y1:2, x0:x1:2]
    coarse = spline(np.c_[xx.ravel(), yy.ravel()]).reshape(*yy.shape, 2)
    full = np.repeat(np.repeat(coarse, 2, 0), 2, 1)[: y1 - y0, : x1 - x0]
    # Fade to zero at the ring: beyond it the spline is free, and the region's edge would show.
    yy, xx = np.mgrid[y0:y1, x0:x1]
    r = np.hypot((xx - face.centre[0]) / face.radii[0], (yy - face.centre[1]) / face.radii[1])
    return (full * np.clip((1.0 - r) / 0.15, 0, 1)[..., None]).astype(np.float32)
