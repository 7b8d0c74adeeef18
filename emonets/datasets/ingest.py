"""Ingestion: find a data root's clips, fingerprint and probe each, return the `clips` table.

Every bad file (missing, empty, truncated, not media, no audio, unknown label, duplicate id)
becomes a row in `problems` naming the file and why; ingestion goes on with the rest.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from emonets.datasets.base import Candidate, Problem, Scan
from emonets.datasets.detect import FORMATS, detect_format
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
from emonets.fingerprint import FingerprintCache, sha256_text
from emonets.images import load_grey_image
from emonets.video import probe

CLIP_COLUMNS = ["clip_id", "path", "sha256", "label", "split", "speaker", "dataset", "media",
                "duration", "fps", "has_audio", "has_video"]
PROBLEM_COLUMNS = ["clip_id", "path", "stage", "reason"]


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


def scan_root(root: Path, fmt: str = "auto", *, calm: str = "drop") -> Scan:
    """Run the reader for ``fmt`` (detected when ``auto``) over ``root``."""
    root = Path(root)
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if fmt == "auto":
        fmt = detect_format(root)
    if not root.exists():
        raise FileNotFoundError(f"{root}: data root does not exist")
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
        return read_manifest(root if root.is_file() else root / "manifest.csv")
    return read_unlabelled(root)


def ingest(
    root: Path | str,
    *,
    fmt: str = "auto",
    calm: str = "drop",
    fingerprints: FingerprintCache | None = None,
) -> IngestResult:
    """Scan, de-duplicate, fingerprint and probe every clip under ``root``."""
    scan = scan_root(Path(root), fmt, calm=calm)
    fingerprints = fingerprints or FingerprintCache()
    problems: list[Problem] = list(scan.problems)
    rows: list[dict] = []
    first_seen: dict[str, str] = {}
    for cand in scan.candidates:
        if cand.clip_id in first_seen:
            problems.append(Problem(cand.clip_id, cand.path,
                                    f"duplicate clip id: same name as {first_seen[cand.clip_id]}"))
            continue
        try:
            row = _describe(cand, fingerprints)
        except ClipError as err:
            problems.append(Problem(cand.clip_id, cand.path, str(err)))
            continue
        except OSError as err:
            problems.append(Problem(cand.clip_id, cand.path, f"cannot read file: {err}"))
            continue
        first_seen[cand.clip_id] = cand.path
        if cand.media == "video" and not row["has_audio"]:
            problems.append(Problem(cand.clip_id, cand.path, "video has no audio stream (audio stages will skip it)"))
        rows.append(row)
    clips = pd.DataFrame(rows, columns=CLIP_COLUMNS)
    problem_df = pd.DataFrame([vars(p) for p in problems], columns=PROBLEM_COLUMNS)
    return IngestResult(scan.dataset, clips, problem_df, scan.skipped, scan.policy)


def _describe(cand: Candidate, fingerprints: FingerprintCache) -> dict:
    row = {"clip_id": cand.clip_id, "path": cand.path, "label": cand.label, "split": cand.split,
           "speaker": cand.speaker, "dataset": cand.dataset, "media": cand.media}
    if "#" in cand.path and cand.media == "image":  # a row of fer2013.csv
        csv_path, row_no = cand.path.rsplit("#", 1)
        row.update(sha256=sha256_text(f"{fingerprints.sha256(csv_path)}#{row_no}"),
                   duration=0.0, fps=0.0, has_audio=False, has_video=False)
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
