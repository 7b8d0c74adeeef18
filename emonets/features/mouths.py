"""Mouth patches: a region of the aligned face (table `mouths`).

Cut from the aligned faces, not the video: FER-2013 faces and video faces share FER's framing
(see ``emonets.features.faces.align``), so their patches are comparable, and this stage re-runs from
the `faces` table alone without decoding video again. The fixed region works for faces
without landmarks (FER-2013); ``follow_landmarks`` instead centres it on each video face's
own mouth (landmarks 48-67 mapped into the aligned face), within ``max_shift`` pixels.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from emonets.features.faces.align import FER_SIZE, alignment_matrix, apply_matrix

MOUTH_COLUMNS = ["clip_id", "frame", "t", "patch", "height", "width"]


@dataclass(frozen=True, kw_only=True)
class MouthConfig:
    """Rows top..bottom and columns left..right (end exclusive) of a 48x48 aligned face, scaled
    for other face sizes. The default 16x28 box holds FER-2013's mean mouth (landmarks 48-67
    span about rows 34-41, columns 16-31 of the template) with room for open mouths."""

    top: int = 30
    bottom: int = 46
    left: int = 10
    right: int = 38
    follow_landmarks: bool = False  # centre the box on the face's own mouth where landmarks exist
    max_shift: float = 4.0          # most the box may move from its place, in 48x48 pixels

    def to_dict(self) -> dict:
        return asdict(self)

    def box(self, size: int) -> tuple[int, int, int, int]:
        """(top, bottom, left, right) for a size x size face; the same shape for every face."""
        k = size / FER_SIZE
        top, left = int(round(self.top * k)), int(round(self.left * k))
        height = int(round((self.bottom - self.top) * k))
        width = int(round((self.right - self.left) * k))
        if not (0 <= top and top + height <= size and 0 <= left and left + width <= size and height > 0 and width > 0):
            raise ValueError(f"mouth box {self} does not fit a {size}x{size} face")
        return top, top + height, left, left + width


def mouths_from_faces(faces: pd.DataFrame, *, config: MouthConfig = MouthConfig()) -> pd.DataFrame:
    """One mouth patch per found face, as catalog `mouths` rows (faces' row order within a size)."""
    found = faces[faces["found"].astype(bool)]
    if found.empty:
        return _table([])
    rows = []
    for size, group in found.groupby("size", sort=False):
        size = int(size)
        top, bottom, left, right = config.box(size)
        stack = np.frombuffer(b"".join(group["face"].tolist()), np.uint8).reshape(len(group), size, size)
        marks = group["landmarks"].tolist()
        for i, row in enumerate(group[["clip_id", "frame", "t"]].itertuples(index=False)):
            dy, dx = _shift(marks[i], size, config) if config.follow_landmarks else (0, 0)
            patch = np.ascontiguousarray(stack[i, top + dy:bottom + dy, left + dx:right + dx])
            rows.append((row.clip_id, int(row.frame), float(row.t), patch.tobytes(), patch.shape[0], patch.shape[1]))
    return _table(rows)


def _shift(landmarks, size: int, config: MouthConfig) -> tuple[int, int]:
    """How far (rows, cols) to move the box so it centres on this face's aligned mouth."""
    pts = np.asarray(landmarks if landmarks is not None else [], dtype=np.float64)
    if pts.size != 136:
        return 0, 0
    pts = pts.reshape(68, 2)
    mouth = apply_matrix(alignment_matrix(pts, size=size), pts[48:68]).mean(0)
    top, bottom, left, right = config.box(size)
    limit = config.max_shift * size / FER_SIZE
    dx = np.clip(mouth[0] - (left + right - 1) / 2, -limit, limit)
    dy = np.clip(mouth[1] - (top + bottom - 1) / 2, -limit, limit)
    dx = int(np.clip(round(dx), -left, size - right))
    dy = int(np.clip(round(dy), -top, size - bottom))
    return dy, dx


def _table(rows: list[tuple]) -> pd.DataFrame:
    df = pd.DataFrame(rows, columns=MOUTH_COLUMNS)
    return df.astype({"clip_id": str, "frame": "int32", "t": "float64", "height": "int32", "width": "int32"})


def decode_mouths(rows: pd.DataFrame) -> np.ndarray:
    """`mouths` rows (all of one size) as (N, h, w) uint8 patches, in the rows' order."""
    from emonets.features.rows import stack_bytes

    return stack_bytes(rows["patch"], (int(rows["height"].iloc[0]), int(rows["width"].iloc[0])))
