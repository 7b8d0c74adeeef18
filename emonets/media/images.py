"""Read still images (e.g. FER-2013's 48x48 JPEGs) as grey uint8 arrays."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image, UnidentifiedImageError

from emonets.errors import MediaError
from emonets.media.paths import display_path, display_text, to_fs


def load_grey_image(path: Path | str, *, size: int | None = None) -> np.ndarray:
    """One image as an H x W uint8 grey array, resized to size x size when given."""
    path = Path(to_fs(path))  # any form emonets.media.paths knows (a WorkUnit may carry a file:// URI)
    shown = display_path(path)  # messages stay valid text whatever the file name's bytes
    if not path.exists():
        raise MediaError(f"{shown}: file does not exist")
    if path.stat().st_size == 0:
        raise MediaError(f"{shown}: file is empty (0 bytes)")
    try:
        with Image.open(path) as img:
            img = img.convert("L")
            if size is not None and img.size != (size, size):
                img = img.resize((size, size), Image.BILINEAR)
            return np.asarray(img, dtype=np.uint8).copy()
    except (UnidentifiedImageError, OSError, SyntaxError) as err:
        raise MediaError(f"{shown}: not a readable image ({display_text(str(err))})") from err


def load_grey_images(paths: Sequence[Path | str], *, size: int = 48) -> np.ndarray:
    """Many images as an (N, size, size) uint8 array (raises MediaError on the first bad one)."""
    out = np.empty((len(paths), size, size), dtype=np.uint8)
    for i, p in enumerate(paths):
        out[i] = load_grey_image(p, size=size)
    return out


def pixels_to_image(pixels: str, *, side: int = 48) -> np.ndarray:
    """FER-2013 CSV's space-separated pixel string as a side x side uint8 array."""
    values = np.array(pixels.split(), dtype=np.int64)
    if values.size != side * side or values.min(initial=0) < 0 or values.max(initial=0) > 255:
        raise MediaError(f"pixel string holds {values.size} values in 0..255 expected {side * side}")
    return values.astype(np.uint8).reshape(side, side)
