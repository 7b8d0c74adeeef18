"""Guess a data root's layout (``auto``) from its folder names and file names."""

from __future__ import annotations

import itertools
from pathlib import Path

from emonets.datasets.base import iter_files, media_kind, normalise_split
from emonets.datasets.csvfile import csv_header
from emonets.datasets.readers import CREMAD_NAME, RAVDESS_NAME
from emonets.labels import UnknownLabelError, normalise_label
from emonets.media.paths import display_path

FORMATS = ("auto", "afew", "ravdess", "cremad", "fer2013", "csv", "videos")


class UnknownFormatError(ValueError):
    """The layout of a data root could not be recognised."""


def _is_label(name: str) -> bool:
    try:
        normalise_label(name)
        return True
    except UnknownLabelError:
        return False


def detect_format(root: Path, *, sample: int = 200) -> str:
    """Return one of FORMATS (never ``auto``) or raise UnknownFormatError saying what was seen."""
    root = Path(root)
    shown = display_path(root)
    if not root.exists():
        raise UnknownFormatError(f"{shown}: data root does not exist")
    if root.is_file():
        if root.suffix.lower() != ".csv":
            raise UnknownFormatError(f"{shown}: a file data root must be a CSV (FER-2013 or a manifest)")
        return "fer2013" if "pixels" in csv_header(root) else "csv"
    if (root / "manifest.csv").is_file():
        return "csv"
    if (root / "fer2013.csv").is_file():
        return "fer2013"
    files = [p for p in itertools.islice(iter_files(root), sample) if media_kind(p)]
    if not files:
        raise UnknownFormatError(f"{shown}: no video, audio or image files found")
    stems = [p.stem for p in files]
    if sum(bool(RAVDESS_NAME.match(s)) for s in stems) > len(stems) / 2:
        return "ravdess"
    if sum(bool(CREMAD_NAME.match(s)) for s in stems) > len(stems) / 2:
        return "cremad"
    kinds = {media_kind(p) for p in files}
    labelled = [p for p in files if _is_label(p.parent.name)]
    if len(labelled) > len(files) / 2:
        if kinds == {"image"}:
            return "fer2013"
        under_splits = [p for p in labelled if normalise_split(p.parent.parent.name)]
        if len(under_splits) > len(labelled) / 2:
            return "afew"
    if kinds & {"video", "audio"}:
        return "videos"
    raise UnknownFormatError(
        f"{shown}: layout not recognised (expected AFEW <Split>/<Emotion>/ folders, RAVDESS or "
        "CREMA-D file names, FER-2013 class folders or CSV, or a manifest.csv); pass --format"
    )
