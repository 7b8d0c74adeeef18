"""Feature-table rows to arrays: the byte-packing shared by the stages' decoders, and one
clip's rows decoded the way training and prediction decode them (usable rows, in time order).
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def stack_bytes(column: pd.Series, shape: tuple[int, ...]) -> np.ndarray:
    """Fixed-size byte strings -> one uint8 array, filled in place: a b"".join would hold a
    second full copy (4.7 GB for the motion blocks of ~900 clips)."""
    out = np.empty((len(column), *shape), dtype=np.uint8)
    flat = out.reshape(len(column), -1)
    size = flat.shape[1]
    for i, blob in enumerate(column):
        if len(blob) != size:
            raise ValueError(f"row {i}: {len(blob)} bytes, expected {size} for shape {shape}")
        flat[i] = np.frombuffer(blob, dtype=np.uint8)
    return out


def decode_rows(table: str, rows: pd.DataFrame) -> np.ndarray:
    """All rows of a feature table as one array (rows first), e.g. faces -> (N, size, size);
    no rows -> shape (0,). The stage writing ``table`` holds the decoder."""
    from emonets import registry

    if len(rows) == 0:
        return np.zeros((0,), np.float32)
    return registry.stage_of_table(table).decode_rows(rows)


def usable_rows(table: str, rows: pd.DataFrame) -> pd.DataFrame:
    """Drop rows that carry no input (faces rows of frames where no face was found)."""
    from emonets import registry

    return registry.stage_of_table(table).usable_rows(rows)


def clip_array(table: str, rows: pd.DataFrame) -> np.ndarray:
    """One clip's rows of ``table`` as the array a specialist sees: usable rows in time order."""
    from emonets import registry

    order = registry.stage_of_table(table).order
    return decode_rows(table, usable_rows(table, rows).sort_values(order, kind="stable"))
