"""Warp a face to FER-2013's framing: a similarity transform from 68 landmarks to a template.

The face CNN learns on FER-2013's 48x48 crops and is then applied to our video faces, so the
aligned faces must be framed like FER's. The template below is where the dlib 68-point
predictor puts four anchors (the two eye centres, the nose tip, the mouth centre) on FER-2013
training images, averaged. Coordinates are pixel indices (x = column, y = row; the centre of
the top-left pixel is (0, 0)).
"""

from __future__ import annotations

import numpy as np
from PIL import Image

# Derived by `python benchmarks/bench_faces.py --derive-template`: 600 FER-2013 train images
# (seeded shuffle over all classes) upscaled 4x to 192 px (bicubic) and edge-padded by 32 px,
# dlib HOG detection (upsample 0, largest box), 68 landmarks mapped back to the 48x48 frame;
# the mean over the 450 images with a detection. The per-image spread is ~3-4 px (FER's
# framing varies), so this is FER's average framing, not any one face.
FER_SIZE = 48
FER_TEMPLATE_48: dict[str, tuple[float, float]] = {
    "eye_left": (14.72, 18.25),   # image-left eye (the subject's right): mean of points 36-41
    "eye_right": (31.97, 18.05),  # image-right eye: mean of points 42-47
    "nose": (23.31, 27.52),       # nose tip: point 30
    "mouth": (23.55, 37.21),      # mouth centre: mean of points 48-67
}
ANCHORS: tuple[str, ...] = ("eye_left", "eye_right", "nose", "mouth")


def anchor_points(landmarks: np.ndarray) -> np.ndarray:
    """(68, 2) landmarks -> (4, 2) anchors in ANCHORS order (eye centres, nose tip, mouth centre)."""
    pts = np.asarray(landmarks, dtype=np.float64).reshape(68, 2)
    return np.stack([pts[36:42].mean(0), pts[42:48].mean(0), pts[30], pts[48:68].mean(0)])


def template_points(size: int = FER_SIZE) -> np.ndarray:
    """The (4, 2) anchor template for a size x size output (FER's framing, scaled)."""
    # Scale about pixel corners so the framing is the same fraction of the image at any size.
    pts = np.array([FER_TEMPLATE_48[a] for a in ANCHORS], dtype=np.float64)
    return (pts + 0.5) * (size / FER_SIZE) - 0.5


def fit_similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity (scale, rotation, translation; no reflection) mapping src to dst.

    Umeyama (1991). Returns a 2x3 matrix ``M`` with ``dst ~= src @ M[:, :2].T + M[:, 2]``.
    """
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    if src.shape != dst.shape or src.ndim != 2 or src.shape[1] != 2 or len(src) < 2:
        raise ValueError(f"need matching (N>=2, 2) point sets, got {src.shape} and {dst.shape}")
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s0, d0 = src - mu_s, dst - mu_d
    var_s = (s0 ** 2).sum() / len(src)
    if var_s <= 1e-12:
        raise ValueError("source points coincide: no similarity transform")
    cov = d0.T @ s0 / len(src)
    u, sig, vt = np.linalg.svd(cov)
    fix = np.eye(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        fix[1, 1] = -1.0
    rot = u @ fix @ vt
    scale = float(np.trace(np.diag(sig) @ fix)) / var_s
    lin = scale * rot
    return np.hstack([lin, (mu_d - lin @ mu_s)[:, None]])


def alignment_matrix(landmarks: np.ndarray, *, size: int = FER_SIZE) -> np.ndarray:
    """The 2x3 similarity taking source-frame landmarks to the size x size aligned face."""
    return fit_similarity(anchor_points(landmarks), template_points(size))


def apply_matrix(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Map (N, 2) points through a 2x3 affine matrix."""
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    return pts @ matrix[:, :2].T + matrix[:, 2]


def warp_to_face(image: np.ndarray, matrix: np.ndarray, *, size: int = FER_SIZE) -> np.ndarray:
    """Resample a grey image through a source->output similarity into a size x size uint8 face.

    A face many times larger than the output (a 320 px face into 48 px) is first shrunk with
    Pillow's antialiased resize, so the result is not aliased; the final bilinear warp then
    works at about the output's scale. Pixels outside the frame repeat the edge.
    """
    if image.ndim != 2:
        raise ValueError(f"expected a grey H x W image, got shape {image.shape}")
    inv = np.linalg.inv(np.vstack([matrix, [0.0, 0.0, 1.0]]))  # output -> source
    corners = np.array([[-1, -1], [size, -1], [-1, size], [size, size]], dtype=np.float64)
    src = corners @ inv[:2, :2].T + inv[:2, 2]
    h, w = image.shape
    x0 = int(np.clip(np.floor(src[:, 0].min()) - 1, 0, w - 1))
    y0 = int(np.clip(np.floor(src[:, 1].min()) - 1, 0, h - 1))
    x1 = int(np.clip(np.ceil(src[:, 0].max()) + 2, x0 + 1, w))
    y1 = int(np.clip(np.ceil(src[:, 1].max()) + 2, y0 + 1, h))
    crop = image[y0:y1, x0:x1]
    # to_crop: output -> crop pixel indices
    to_crop = inv.copy()
    to_crop[0, 2] -= x0
    to_crop[1, 2] -= y0
    scale = float(np.sqrt(abs(np.linalg.det(matrix[:, :2]))))  # output px per source px
    if scale < 0.75:
        cw, ch = crop.shape[1], crop.shape[0]
        nw, nh = max(1, int(round(cw * scale))), max(1, int(round(ch * scale)))
        crop = np.asarray(Image.fromarray(crop).resize((nw, nh), Image.BILINEAR))
        rx, ry = cw / nw, ch / nh  # crop index = (shrunk index + 0.5) * r - 0.5
        shrink = np.array([[1 / rx, 0, 0.5 / rx - 0.5], [0, 1 / ry, 0.5 / ry - 0.5], [0, 0, 1]])
        to_crop = shrink @ to_crop
    from skimage.transform import AffineTransform, warp  # (0.4 s to import: only where faces are warped)

    out = warp(crop, AffineTransform(matrix=to_crop), output_shape=(size, size), order=1,
               mode="edge", preserve_range=True)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def align_face(image: np.ndarray, landmarks: np.ndarray, *, size: int = FER_SIZE) -> np.ndarray:
    """A grey frame and its (68, 2) landmarks -> the size x size aligned grey face (uint8)."""
    return warp_to_face(image, alignment_matrix(landmarks, size=size), size=size)
