"""Scan the composed benchmark's sources: FER-2013 face folders and RAVDESS speech files.

Kept apart from planning and rendering so the file-name rules (which folders, which RAVDESS
codes are dropped and counted) live in one place.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from emonets.datasets.base import IMAGE_EXTS, media_kind, normalise_split
from emonets.datasets.readers import RAVDESS_EMOTIONS, RAVDESS_NAME
from emonets.labels import UnknownLabelError, normalise_label


@dataclass(frozen=True)
class Face:
    path: Path
    rel: str      # path under the faces root
    label: str
    pool: str     # "train" (FER train) or "heldout" (FER val / test)


@dataclass(frozen=True)
class Utterance:
    path: Path
    rel: str
    label: str
    actor: int


def scan_faces(root: Path | str) -> tuple[dict[str, dict[str, list[Face]]], Counter]:
    """FER-2013 folders ``<train|val|test>/<class>/*.jpg`` as {class: {pool: [Face]}} (sorted)."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: faces root is not a folder")
    faces: dict[str, dict[str, list[Face]]] = {}
    skipped: Counter = Counter()
    for split_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        split = normalise_split(split_dir.name)
        if split is None:
            skipped[f"folder {split_dir.name}"] += 1
            continue
        pool = "train" if split == "train" else "heldout"
        for class_dir in sorted(p for p in split_dir.iterdir() if p.is_dir()):
            try:
                label = normalise_label(class_dir.name)
            except UnknownLabelError:
                skipped[f"class {class_dir.name}"] += 1
                continue
            names = sorted(e.name for e in os.scandir(class_dir)
                           if e.is_file() and not e.name.startswith(".") and Path(e.name).suffix.lower() in IMAGE_EXTS)
            faces.setdefault(label, {}).setdefault(pool, []).extend(
                Face(class_dir / n, f"{split_dir.name}/{class_dir.name}/{n}", label, pool) for n in names)
    if not faces:
        raise ValueError(f"{root}: no FER-2013 faces found (expected <train|val>/<class>/*.jpg)")
    return faces, skipped


def scan_speech(root: Path | str) -> tuple[dict[str, list[Utterance]], Counter]:
    """RAVDESS files ``MM-VV-EE-II-SS-RR-AA`` with sound as {class: [Utterance]} (sorted).

    Dropped and counted: "calm" (not an EmoNets class), song (VV=02), video-only files (MM=02)
    and names that are not RAVDESS's.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: speech root is not a folder")
    out: dict[str, list[Utterance]] = {}
    dropped: Counter = Counter()
    for path in sorted(root.rglob("*")):
        if not path.is_file() or path.name.startswith(".") or media_kind(path) not in ("audio", "video"):
            continue
        match = RAVDESS_NAME.match(path.stem)
        if not match:
            dropped["not_ravdess_name"] += 1
            continue
        modality, channel, emotion, _, _, _, actor = match.groups()
        raw = RAVDESS_EMOTIONS.get(emotion)
        if raw is None:
            dropped[f"emotion_code_{emotion}"] += 1
        elif raw == "calm":
            dropped["calm"] += 1
        elif channel != "01":
            dropped["song"] += 1
        elif modality == "02":
            dropped["video_only"] += 1
        else:
            label = normalise_label(raw)
            out.setdefault(label, []).append(Utterance(path, path.relative_to(root).as_posix(), label, int(actor)))
    if not out:
        raise ValueError(f"{root}: no RAVDESS speech files found (names MM-VV-EE-II-SS-RR-AA)")
    return out, dropped
