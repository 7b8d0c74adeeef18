"""Per-class expression templates for the demo data: how far each of the 68 landmarks moves.

Numbers only (in inter-ocular distances), so the expressions can be read and tuned in one place.
"""

from __future__ import annotations

import numpy as np

# Mirror pairs of the 68-point iBUG scheme (image-left index, image-right index).
_PAIRS = ([(i, 16 - i) for i in range(8)] + [(17 + i, 26 - i) for i in range(5)]
          + [(36, 45), (37, 44), (38, 43), (39, 42), (40, 47), (41, 46), (31, 35), (32, 34)]
          + [(48, 54), (49, 53), (50, 52), (59, 55), (58, 56), (60, 64), (61, 63), (67, 65)])
MIRROR = np.arange(68)
for _a, _b in _PAIRS:
    MIRROR[_a], MIRROR[_b] = _b, _a


def _sym(out: dict, left: int, dx_out: float, dy: float) -> None:
    """Move ``left`` and its mirror point: ``dx_out`` away from the face's midline, ``dy`` down."""
    out[left] = (-dx_out, dy)
    out[int(MIRROR[left])] = (dx_out, dy)


def template(emotion: str) -> np.ndarray:
    """(68, 2) landmark displacement at the expression's apex, in inter-ocular distances."""
    t: dict[int, tuple[float, float]] = {}
    if emotion == "happy":
        _sym(t, 48, 0.10, -0.10); _sym(t, 49, 0.05, -0.05); _sym(t, 59, 0.06, -0.03)
        _sym(t, 60, 0.08, -0.08); _sym(t, 40, 0.0, -0.03); _sym(t, 41, 0.0, -0.03)
        _sym(t, 2, 0.0, -0.03); _sym(t, 3, 0.0, -0.03); _sym(t, 67, 0.02, 0.03); _sym(t, 58, 0.02, 0.02)
        t[66], t[57] = (0.0, 0.04), (0.0, 0.03)
    elif emotion == "sad":
        _sym(t, 48, -0.02, 0.09); _sym(t, 59, 0.0, 0.04); _sym(t, 60, -0.01, 0.06)
        _sym(t, 21, -0.02, -0.08); _sym(t, 20, 0.0, -0.04); _sym(t, 17, 0.0, 0.04)
        _sym(t, 37, 0.0, 0.03); _sym(t, 38, 0.0, 0.03); t[57] = (0.0, 0.02)
    elif emotion == "angry":
        for k, dy in zip(range(17, 22), (0.03, 0.06, 0.08, 0.09, 0.10)):
            _sym(t, k, -0.05 if k == 21 else (-0.02 if k == 20 else 0.0), dy)
        _sym(t, 37, 0.0, 0.03); _sym(t, 38, 0.0, 0.03); _sym(t, 40, 0.0, -0.03); _sym(t, 41, 0.0, -0.03)
        _sym(t, 61, 0.0, 0.02); _sym(t, 67, 0.0, -0.02); _sym(t, 50, 0.0, 0.02); _sym(t, 58, 0.0, -0.03)
        _sym(t, 48, -0.02, 0.01); _sym(t, 31, 0.03, -0.01)
        t[62], t[66], t[51], t[57] = (0.0, 0.02), (0.0, -0.02), (0.0, 0.02), (0.0, -0.03)
    elif emotion == "disgust":
        _sym(t, 50, 0.0, -0.08); _sym(t, 49, 0.0, -0.05); _sym(t, 61, 0.0, -0.07); _sym(t, 31, 0.03, -0.05)
        _sym(t, 32, 0.0, -0.03); _sym(t, 48, -0.01, 0.04); _sym(t, 21, -0.02, 0.05); _sym(t, 20, 0.0, 0.05)
        _sym(t, 19, 0.0, 0.04); _sym(t, 40, 0.0, -0.03); _sym(t, 41, 0.0, -0.03); _sym(t, 58, 0.0, 0.02)
        t[51], t[62], t[33], t[57] = (0.0, -0.09), (0.0, -0.08), (0.0, -0.03), (0.0, 0.02)
    elif emotion == "fear":
        for k, dx, dy in ((21, -0.03, -0.12), (20, -0.02, -0.10), (19, 0.0, -0.08), (18, 0.0, -0.05), (17, 0.0, -0.03)):
            _sym(t, k, dx, dy)
        _sym(t, 37, 0.0, -0.05); _sym(t, 38, 0.0, -0.05); _sym(t, 40, 0.0, 0.01); _sym(t, 41, 0.0, 0.01)
        _sym(t, 48, 0.10, 0.03); _sym(t, 49, 0.05, 0.0); _sym(t, 59, 0.05, 0.04); _sym(t, 60, 0.08, 0.02)
        _sym(t, 67, 0.02, 0.06); _sym(t, 58, 0.02, 0.06); _sym(t, 7, 0.0, 0.04)
        t[66], t[57], t[8] = (0.0, 0.07), (0.0, 0.07), (0.0, 0.05)
    elif emotion == "surprise":
        for k, dy in zip(range(17, 22), (-0.08, -0.10, -0.12, -0.12, -0.12)):
            _sym(t, k, 0.0, dy)
        _sym(t, 37, 0.0, -0.06); _sym(t, 38, 0.0, -0.06); _sym(t, 40, 0.0, 0.02); _sym(t, 41, 0.0, 0.02)
        for k, dy in ((7, 0.20), (6, 0.15), (5, 0.08), (4, 0.03)):
            _sym(t, k, 0.0, dy)
        _sym(t, 59, -0.02, 0.18); _sym(t, 58, -0.01, 0.23); _sym(t, 67, -0.01, 0.22)
        _sym(t, 48, -0.03, 0.10); _sym(t, 60, -0.03, 0.10); _sym(t, 50, 0.0, -0.02)
        t[8], t[57], t[66], t[51] = (0.0, 0.22), (0.0, 0.24), (0.0, 0.24), (0.0, -0.02)
    out = np.zeros((68, 2), np.float64)
    for k, v in t.items():
        out[k] = v
    return out
