"""Ingestion: find a data root's clips, fingerprint and probe each, return the `clips` table.

Every bad file (missing, empty, truncated, not media, no audio, unknown label, duplicate id,
not a regular file, outside a manifest's folder) becomes a row in `problems` naming the file
and why; ingestion goes on with the rest.

**One copy of the same bytes.** Two clips whose content sha256 is equal (a file copied into two
class folders, an image repeated in FER-2013) would let a model train on one copy and be scored
on the other, or learn one picture under two labels. Only one copy becomes a clip; each other
copy becomes a problem row "same bytes as <kept id> (<kept path>)" that says whether the labels
conflict ("labels conflict: happy vs sad") or agree ("same label"), and the splits when they
differ. The kept copy is the one in the evaluation split when the copies span splits (test,
then val, then train: the published evaluation sets stay whole, and the leak is removed from
training), else the first by sorted path. FER-2013 rows of ``fer2013.csv`` are compared by
their pixel values, so the CSV and the folder forms give the same clips.

**File names.** Any name the file system allows is ingested, whatever its bytes (see
emonets.media.paths): ``clips.path`` holds it as display text (valid UTF-8, one line, undecodable
bytes as ``\\xff``), ``clips.path_bytes`` the exact bytes (``os.fsencode``), from which
emonets.features.extraction.work_units makes the path every stage opens. Clip ids come from the display
form, so they are valid text too. Folder roots are made absolute so that a stage running in
another process or folder opens the same files.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from emonets.datasets.base import Candidate, Problem, Scan
from emonets.datasets.formats import FORMATS, detect_format
from emonets.datasets.readers import (
    read_afew,
    read_cremad,
    read_fer_csv,
    read_fer_folders,
    read_manifest,
    read_unlabelled,
    read_ravdess,
)
from emonets.errors import ClipError
from emonets.media.fingerprint import FingerprintCache
from emonets.media.images import load_grey_image
from emonets.media.paths import display_path, display_text, fs_bytes
from emonets.media.video import probe

CLIP_COLUMNS = ["clip_id", "path", "path_bytes", "sha256", "label", "split", "speaker", "dataset", "media",
                "duration", "fps", "has_audio", "has_video"]
PROBLEM_COLUMNS = ["clip_id", "path", "stage", "reason"]
FOLDER_FORMATS = ("afew", "ravdess", "cremad", "videos")
# Which copy of the same bytes is kept: the evaluation split's (see the module docstring).
_KEEP_ORDER = {"test": 0, "val": 1, "train": 2}


@dataclass
class IngestResult:
    format: str
    clips: pd.DataFrame
    problems: pd.DataFrame
    skipped: Counter = field(default_factory=Counter)
    policy: dict = field(default_factory=dict)

    def summary(self) -> dict:
        """Counts for the console and the JSON line: clips, by_label, by_split, problems."""
        clips = self.clips
        by_label = {k: int(v) for k, v in sorted(clips["label"].replace("", "(none)").value_counts().items())}
        by_split = {k: int(v) for k, v in sorted(clips["split"].value_counts().items())}
        by_split_label = {
            split: {k: int(v) for k, v in group["label"].replace("", "(none)").value_counts().items()}
            for split, group in clips.groupby("split")
        }
        return {
            "format": self.format,
            "clips": int(len(clips)),
            "by_label": by_label,
            "by_split": by_split,
            "by_split_label": by_split_label,
            "problems": int(len(self.problems)),
            "skipped": dict(self.skipped),
            "policy": self.policy,
        }


def scan_root(root: Path, fmt: str = "auto", *, calm: str = "drop", allow_outside: bool = False) -> Scan:
    """Run the reader for ``fmt`` (detected when ``auto``) over ``root``.

    ``allow_outside`` lets a CSV manifest name files outside its own folder (refused per row
    otherwise, see read_manifest).
    """
    root = Path(os.path.abspath(root))  # not resolve(): a symlinked root keeps its name
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if fmt == "auto":
        fmt = detect_format(root)
    if not root.exists():
        raise FileNotFoundError(f"{display_path(root)}: data root does not exist")
    if fmt in FOLDER_FORMATS and not root.is_dir():
        raise ValueError(f"{display_path(root)}: the {fmt} format needs a folder as data root")
    if fmt == "afew":
        return read_afew(root)
    if fmt == "ravdess":
        return read_ravdess(root, calm=calm)
    if fmt == "cremad":
        return read_cremad(root)
    if fmt == "fer2013":
        if root.is_file():
            return read_fer_csv(root)
        if (root / "fer2013.csv").is_file():
            return read_fer_csv(root / "fer2013.csv")
        return read_fer_folders(root)
    if fmt == "csv":
        return read_manifest(root if root.is_file() else root / "manifest.csv", allow_outside=allow_outside)
    return read_unlabelled(root)


def ingest(
    root: Path | str,
    *,
    fmt: str = "auto",
    calm: str = "drop",
    fingerprints: FingerprintCache | None = None,
    allow_outside: bool = False,
    keep_copies: bool = False,
) -> IngestResult:
    """Scan, de-duplicate, fingerprint and probe every clip under ``root``.

    ``keep_copies``: every copy of the same bytes stays a clip (for prediction, where each file
    the user names gets its label; de-duplication protects training and evaluation sets).
    """
    scan = scan_root(Path(root), fmt, calm=calm, allow_outside=allow_outside)
    fingerprints = fingerprints or FingerprintCache()
    problems: list[Problem] = list(scan.problems)
    described: list[tuple[Candidate, dict]] = []
    first_seen: dict[str, str] = {}
    for cand in scan.candidates:
        if cand.clip_id in first_seen:
            problems.append(Problem(cand.clip_id, cand.path,
                                    f"duplicate clip id: same name as {display_path(first_seen[cand.clip_id])}"))
            continue
        try:
            row = _describe(cand, fingerprints)
        except ClipError as err:
            problems.append(Problem(cand.clip_id, cand.path, str(err)))
            continue
        except (OSError, ValueError) as err:  # ValueError: e.g. a name the OS refuses to stat
            problems.append(Problem(cand.clip_id, cand.path, f"cannot read file: {err}"))
            continue
        first_seen[cand.clip_id] = cand.path
        described.append((cand, row))
    if keep_copies:
        kept = described
    else:
        kept, copies = one_copy_per_content(described)
        problems += copies
    rows = []
    for cand, row in kept:
        if cand.media == "video" and not row["has_audio"]:
            problems.append(Problem(cand.clip_id, cand.path, "video has no audio stream (audio stages will skip it)"))
        rows.append(row)
    clips = pd.DataFrame(rows, columns=CLIP_COLUMNS)
    problem_df = pd.DataFrame([problem_row(p) for p in problems], columns=PROBLEM_COLUMNS)
    return IngestResult(scan.dataset, clips, problem_df, scan.skipped, scan.policy)


def problem_row(problem: Problem) -> dict:
    """A `problems` table row: the path as display text (Parquet strings must be valid UTF-8)."""
    return {"clip_id": problem.clip_id, "path": display_path(problem.path), "stage": problem.stage,
            "reason": display_text(problem.reason)}


def one_copy_per_content(described: list[tuple[Candidate, dict]]):
    """Split described clips into those kept and a Problem for each other copy of the same bytes.

    Order is kept; which copy stays is decided per sha256 (see the module docstring).
    """
    groups: dict[str, list[int]] = {}
    for i, (_, row) in enumerate(described):
        groups.setdefault(row["sha256"], []).append(i)
    dropped: dict[int, Problem] = {}
    for members in groups.values():
        if len(members) < 2:
            continue
        keep = min(members, key=lambda i: (_KEEP_ORDER.get(described[i][1]["split"], 3),
                                           fs_bytes(described[i][0].path)))
        first, first_row = described[keep]
        for i in members:
            if i == keep:
                continue
            cand, row = described[i]
            if row["label"] == first_row["label"]:
                labels = f"same label ({row['label'] or 'unlabelled'})"
            else:
                labels = f"labels conflict: {first_row['label'] or 'unlabelled'} vs {row['label'] or 'unlabelled'}"
            splits = "" if row["split"] == first_row["split"] else f"; splits: {first_row['split']} vs {row['split']}"
            dropped[i] = Problem(cand.clip_id, cand.path,
                                 f"same bytes as {first.clip_id} ({display_path(first.path)}); {labels}{splits}; "
                                 f"left out, only {first.clip_id} is kept")
    kept = [d for i, d in enumerate(described) if i not in dropped]
    return kept, [dropped[i] for i in sorted(dropped)]


def _describe(cand: Candidate, fingerprints: FingerprintCache) -> dict:
    row = {"clip_id": cand.clip_id, "path": display_path(cand.path), "path_bytes": fs_bytes(cand.path),
           "label": cand.label, "split": cand.split, "speaker": cand.speaker, "dataset": cand.dataset,
           "media": cand.media}
    if cand.content_sha256:  # not a whole file (a row of fer2013.csv): the reader hashed it
        row.update(sha256=cand.content_sha256, duration=0.0, fps=0.0, has_audio=False, has_video=False)
        return row
    if cand.media == "image":
        load_grey_image(cand.path)  # raises MediaError for empty/truncated/non-image files
        row.update(sha256=fingerprints.sha256(cand.path), duration=0.0, fps=0.0, has_audio=False, has_video=False)
        return row
    info = probe(cand.path)  # raises MediaError
    if cand.media == "video" and not info.has_video:
        cand.media = row["media"] = "audio"
    row.update(sha256=fingerprints.sha256(cand.path), duration=float(info.duration), fps=float(info.fps),
               has_audio=info.has_audio, has_video=info.has_video)
    return row
