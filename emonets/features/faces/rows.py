"""Decoding the `faces` table: its usable rows (frames where the main face was found) and
their aligned faces as one (N, size, size) uint8 array."""

from __future__ import annotations

import numpy as np
import pandas as pd

from emonets.features.rows import stack_bytes


def found_rows(rows: pd.DataFrame) -> pd.DataFrame:
    """Rows of frames where the main face was found (the others carry no face bytes)."""
    return rows[rows["found"]]


def decode_faces(rows: pd.DataFrame) -> np.ndarray:
    """Found `faces` rows (all of one size) as (N, size, size) uint8, in the rows' order."""
    size = int(rows["size"].iloc[0])
    return stack_bytes(rows["face"], (size, size))
