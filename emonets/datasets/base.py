"""What every dataset reader returns: candidate clips and per-file problems; the folder walk."""

from __future__ import annotations

import errno
import os
import stat
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from emonets.media.paths import display_text

VIDEO_EXTS = {".avi", ".mp4", ".flv", ".mkv", ".mov", ".webm", ".mpg", ".mpeg", ".m4v", ".wmv"}
AUDIO_EXTS = {".wav", ".flac", ".mp3", ".ogg", ".m4a", ".aac", ".opus"}
IMAGE_EXTS = {".jpg", ".jpeg", ".png", ".bmp", ".pgm", ".tif", ".tiff"}
SPLITS = ("train", "val", "test")


@dataclass
class Candidate:
    """A clip (or image) a reader found, before fingerprinting and probing.

    ``path`` is the file-system form (a surrogate-escaped str where the name is not UTF-8, see
    emonets.media.paths); ingest stores it as display text plus raw bytes. ``clip_id`` is made
    display-safe here, once for every reader, because ids become Parquet text and partition keys.
    """

    clip_id: str
    path: str
    label: str  # canonical class name, or "" when the dataset is unlabelled
    split: str
    speaker: str
    dataset: str
    media: str  # video | audio | image
    # Set by readers whose clips are not whole files (a fer2013.csv row): the content hash,
    # so ingest neither probes nor hashes a file for it.
    content_sha256: str = ""

    def __post_init__(self) -> None:
        self.clip_id = display_text(self.clip_id)


@dataclass
class Problem:
    clip_id: str
    path: str  # file-system form, like Candidate.path
    reason: str
    stage: str = "ingest"

    def __post_init__(self) -> None:
        self.clip_id = display_text(self.clip_id)
        self.reason = display_text(self.reason)


@dataclass
class Scan:
    """A reader's result. ``skipped`` counts files left out by an explicit policy (e.g. calm)."""

    dataset: str
    candidates: list[Candidate] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    skipped: Counter = field(default_factory=Counter)
    policy: dict = field(default_factory=dict)


def media_kind(path: Path) -> str | None:
    ext = path.suffix.lower()
    if ext in VIDEO_EXTS:
        return "video"
    if ext in AUDIO_EXTS:
        return "audio"
    if ext in IMAGE_EXTS:
        return "image"
    return None


def normalise_split(raw: str) -> str | None:
    """Map split spellings (Train, Val, validation, PublicTest, ...) to train/val/test."""
    key = raw.strip().lower()
    return {
        "train": "train", "training": "train",
        "val": "val", "valid": "val", "validation": "val", "publictest": "val", "dev": "val",
        "test": "test", "testing": "test", "privatetest": "test",
    }.get(key)


def iter_files(root: Path, problems: list[Problem] | None = None) -> Iterator[Path]:
    """Every regular file under ``root`` in a stable (sorted) order; hidden names are skipped.

    Anything else that is not hidden becomes a Problem in ``problems`` (when given) instead of
    vanishing: a FIFO, socket or device named like a video, a broken symlink, a symlink loop, a
    folder that cannot be listed. Symlinks to files are followed. Symlinks to folders are not
    (as ``Path.rglob`` did before): inside the root they only alias files already found (and a
    link to a parent would recurse forever), outside it they could walk the whole disk; each is
    recorded, with a loop named as such. The walk uses ``os.scandir``, one stat per entry.
    """
    root = Path(root)
    files: list[Path] = []
    odd: list[tuple[Path, str]] = []
    real_root = os.path.realpath(root)
    stack = [root]
    while stack:
        folder = stack.pop()
        try:
            with os.scandir(folder) as it:
                entries = list(it)
        except OSError as err:
            odd.append((folder, f"cannot list folder: {err.strerror or err}"))
            continue
        for entry in entries:
            if entry.name.startswith("."):
                continue
            path = Path(entry.path)
            reason = _not_regular(entry, path, real_root)
            if reason is None:
                files.append(path)
            elif reason == "dir":
                stack.append(path)
            else:
                odd.append((path, reason))
    if problems is not None:
        problems.extend(Problem(p.stem, str(p), r) for p, r in sorted(odd))
    yield from sorted(files)


def _not_regular(entry: os.DirEntry, path: Path, real_root: str) -> str | None:
    """None for a regular file, "dir" for a real folder to descend into, else the reason."""
    is_link = False
    try:
        is_link = entry.is_symlink()
        st = os.stat(entry.path)  # follows symlinks
    except OSError as err:
        if err.errno == errno.ELOOP:
            return "not a regular file: symlink loop"
        if is_link and err.errno in (errno.ENOENT, errno.ENOTDIR):
            return f"not a regular file: broken symlink (points to {display_text(os.readlink(entry.path))})"
        return f"cannot stat file: {err.strerror or err}"
    mode = st.st_mode
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISDIR(mode):
        if not is_link:
            return "dir"
        target = os.path.realpath(entry.path)
        parent = os.path.realpath(path.parent)
        if parent == target or parent.startswith(target.rstrip(os.sep) + os.sep):
            return f"not a regular file: symlink loop (a folder link to {display_text(target)}, a folder above it)"
        where = "inside" if (target + os.sep).startswith(real_root.rstrip(os.sep) + os.sep) else "outside"
        return (f"symlinked folder not followed (points to {display_text(target)}, {where} the data root); "
                "ingest that folder as a root of its own")
    return f"not a regular file: {_file_kind(mode)}"


def _file_kind(mode: int) -> str:
    for test, name in ((stat.S_ISFIFO, "FIFO"), (stat.S_ISSOCK, "socket"), (stat.S_ISCHR, "character device"),
                       (stat.S_ISBLK, "block device")):
        if test(mode):
            return name
    return f"file type {stat.S_IFMT(mode):o}"
