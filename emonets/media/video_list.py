"""What the user asked to label: video files as given, every video in a folder, or a CSV's list.

Batch prediction takes a folder or a CSV (a ``path`` column, relative to the CSV's folder or
absolute) as readily as file names; each is expanded here, in a stable order, duplicates once.
A name that is neither an existing file nor a folder stays in the list, so the caller can give
it its per-video record ("no such file").
"""

from __future__ import annotations

import os
from pathlib import Path

from emonets.datasets.base import VIDEO_EXTS
from emonets.datasets.csvfile import iter_csv_rows
from emonets.media.paths import to_fs


def videos_in_folder(folder: Path) -> list[Path]:
    """Every file with a video extension under ``folder`` (sorted; symlinked folders not followed)."""
    found = []
    for parent, dirs, files in os.walk(folder):
        dirs.sort()
        found += [Path(parent) / f for f in sorted(files) if Path(f).suffix.lower() in VIDEO_EXTS]
    return found


def videos_in_csv(csv_path: Path) -> list[Path]:
    """The ``path`` column of a CSV, relative paths taken from the CSV's folder."""
    base = csv_path.parent
    return [base / Path(to_fs(row["path"])).expanduser() for row in iter_csv_rows(csv_path, required=["path"])
            if row["path"].strip()]


def _loops_back(path: Path) -> bool:
    """A link to a folder that holds the link itself (walking it would never end)."""
    if not path.is_symlink():
        return False
    target, here = Path(os.path.realpath(path)), Path(os.path.abspath(path)).parent
    return here == target or target in here.parents


def expand_videos(inputs: list[Path]) -> list[Path]:
    """Files as given, folders and ``.csv`` lists expanded; absolute, each once, in order.

    A folder without videos, and a link back into its own folder, stay as they are, so each
    gets its record ("not a file") instead of vanishing from the results.
    """
    out: dict[Path, None] = {}
    for item in inputs:
        path = Path(item).expanduser()
        if path.is_dir() and not _loops_back(path):
            listed = videos_in_folder(path) or [path]
        elif path.is_file() and path.suffix.lower() == ".csv":
            listed = videos_in_csv(path)
        else:
            listed = [path]
        for video in listed:
            out.setdefault(Path(os.path.abspath(video)), None)
    return list(out)
