"""What every dataset reader returns: candidate clips and per-file problems."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

VIDEO_EXTS = {".avi", ".mp4", ".flv", ".mkv", ".mov", ".webm", ".mpg", ".mpeg", ".m4v", ".wmv"}
AUDIO_EXTS = {".wav", ".flac", ".mp3", ".ogg", ".m4a", ".aac", ".opus"}
IMAGE_EXTS = {".jpg", ".jpeg", ".png", ".bmp", ".pgm", ".tif", ".tiff"}
SPLITS = ("train", "val", "test")


@dataclass
class Candidate:
    """A clip (or image) a reader found, before fingerprinting and probing."""

    clip_id: str
    path: str
    label: str  # canonical class name, or "" when the dataset is unlabelled
    split: str
    speaker: str
    dataset: str
    media: str  # video | audio | image


@dataclass
class Problem:
    clip_id: str
    path: str
    reason: str
    stage: str = "ingest"


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


def iter_files(root: Path):
    """Every regular file under root, in a stable order, hidden files skipped."""
    for path in sorted(root.rglob("*")):
        if path.is_file() and not any(part.startswith(".") for part in path.relative_to(root).parts):
            yield path
