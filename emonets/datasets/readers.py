"""One reader per dataset layout. Each returns a Scan; none opens media (ingest probes later)."""

from __future__ import annotations

import csv
import re
from pathlib import Path

from emonets.datasets.base import (
    Candidate,
    Problem,
    Scan,
    iter_files,
    media_kind,
    normalise_split,
)
from emonets.labels import UnknownLabelError, normalise_label

RAVDESS_NAME = re.compile(r"^(\d{2})-(\d{2})-(\d{2})-(\d{2})-(\d{2})-(\d{2})-(\d{2})$")
RAVDESS_EMOTIONS = {
    "01": "neutral", "02": "calm", "03": "happy", "04": "sad",
    "05": "angry", "06": "fear", "07": "disgust", "08": "surprise",
}
CREMAD_NAME = re.compile(r"^(\d{4})_([A-Z]{3})_([A-Z]{3})_([A-Z]{2})$")
CALM_POLICIES = ("drop", "neutral")


def _label_or_problem(raw: str, path: Path, clip_id: str, scan: Scan) -> str | None:
    try:
        return normalise_label(raw)
    except UnknownLabelError as err:
        scan.problems.append(Problem(clip_id, str(path), str(err)))
        return None


def read_afew(root: Path) -> Scan:
    """AFEW/EmotiW trees: ``<root>/<Train|Val|Test>/<Emotion>/*.avi|mp4``."""
    scan = Scan("afew")
    for path in iter_files(root):
        rel = path.relative_to(root).parts
        kind = media_kind(path)
        if kind is None:
            continue
        clip_id = path.stem
        if len(rel) != 3 or normalise_split(rel[0]) is None:
            scan.problems.append(Problem(clip_id, str(path), "not under <Split>/<Emotion>/ (AFEW layout)"))
            continue
        label = _label_or_problem(rel[1], path, clip_id, scan)
        if label is not None:
            scan.candidates.append(Candidate(clip_id, str(path), label, normalise_split(rel[0]), "", "afew", kind))
    return scan


def ravdess_split(actor: int, *, val_actors: range, test_actors: range) -> str:
    if actor in test_actors:
        return "test"
    return "val" if actor in val_actors else "train"


def read_ravdess(
    root: Path,
    *,
    calm: str = "drop",
    val_actors: range = range(15, 19),
    test_actors: range = range(19, 25),
) -> Scan:
    """RAVDESS names ``MM-VV-EE-II-SS-RR-AA``; speaker-independent splits by actor.

    ``calm`` is not an EmoNets class: ``drop`` leaves those files out (counted in
    ``skipped``), ``neutral`` maps them to neutral. Default splits: actors 01-14 train,
    15-18 val, 19-24 test, so no actor is in two splits.
    """
    if calm not in CALM_POLICIES:
        raise ValueError(f"calm policy must be one of {CALM_POLICIES}, not {calm!r}")
    scan = Scan("ravdess", policy={"calm": calm, "val_actors": [val_actors.start, val_actors.stop - 1],
                                   "test_actors": [test_actors.start, test_actors.stop - 1]})
    for path in iter_files(root):
        kind = media_kind(path)
        if kind is None:
            continue
        clip_id = path.stem
        match = RAVDESS_NAME.match(clip_id)
        if not match:
            scan.problems.append(Problem(clip_id, str(path), "name is not RAVDESS's MM-VV-EE-II-SS-RR-AA"))
            continue
        modality, _, emotion, _, _, _, actor = match.groups()
        if modality not in ("01", "02", "03"):
            scan.problems.append(Problem(clip_id, str(path), f"unknown RAVDESS modality code {modality}"))
            continue
        raw = RAVDESS_EMOTIONS.get(emotion)
        if raw is None:
            scan.problems.append(Problem(clip_id, str(path), f"unknown label: RAVDESS emotion code {emotion}"))
            continue
        if raw == "calm":
            if calm == "drop":
                scan.skipped["calm"] += 1
                continue
            raw = "neutral"
        split = ravdess_split(int(actor), val_actors=val_actors, test_actors=test_actors)
        scan.candidates.append(Candidate(clip_id, str(path), raw, split, f"ravdess-{actor}", "ravdess", kind))
    return scan


def cremad_split(actor: int) -> str:
    """CREMA-D has actors 1001-1091: 1001-1063 train, 1064-1077 val, 1078-1091 test."""
    if actor >= 1078:
        return "test"
    return "val" if actor >= 1064 else "train"


def read_cremad(root: Path) -> Scan:
    """CREMA-D names ``ACTOR_SENTENCE_EMO_LEVEL`` (e.g. 1001_DFA_ANG_XX.flv); no surprise class."""
    scan = Scan("cremad", policy={"splits": "by actor: 1001-1063 train, 1064-1077 val, 1078-1091 test"})
    for path in iter_files(root):
        kind = media_kind(path)
        if kind is None:
            continue
        clip_id = path.stem
        match = CREMAD_NAME.match(clip_id)
        if not match:
            scan.problems.append(Problem(clip_id, str(path), "name is not CREMA-D's ACTOR_SENTENCE_EMO_LEVEL"))
            continue
        actor, _, emo, _ = match.groups()
        label = _label_or_problem(emo, path, clip_id, scan)
        if label is not None:
            scan.candidates.append(
                Candidate(clip_id, str(path), label, cremad_split(int(actor)), f"cremad-{actor}", "cremad", kind)
            )
    return scan


def read_fer_folders(root: Path, *, default_split: str = "train") -> Scan:
    """FER-2013 as class folders (``<class>/*.jpg``), optionally under ``train/ val/ test/``."""
    scan = Scan("fer2013")
    for path in iter_files(root):
        if media_kind(path) != "image":
            continue
        rel = path.relative_to(root).parts
        # FER-2013's own file names repeat across class folders (different images), so the
        # id keeps the folders: e.g. "train-surprise-Training_52789098".
        clip_id = "-".join([*rel[:-1], path.stem])
        if len(rel) == 3 and normalise_split(rel[0]):
            split, raw = normalise_split(rel[0]), rel[1]
        elif len(rel) == 2:
            split, raw = default_split, rel[0]
        else:
            scan.problems.append(Problem(clip_id, str(path), "not under [<split>/]<class>/ (FER-2013 layout)"))
            continue
        label = _label_or_problem(raw, path, clip_id, scan)
        if label is not None:
            scan.candidates.append(Candidate(clip_id, str(path), label, split, "", "fer2013", "image"))
    return scan


FER_CSV_LABELS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")


def read_fer_csv(csv_path: Path) -> Scan:
    """The original ``fer2013.csv`` (emotion, pixels, Usage). Rows become ``<csv>#<row>`` clips."""
    scan = Scan("fer2013", policy={"source": "csv"})
    with open(csv_path, newline="") as fh:
        for row_no, row in enumerate(csv.DictReader(fh)):
            clip_id = f"fer2013-{row_no:05d}"
            where = f"{csv_path}#{row_no}"
            try:
                code = int(row["emotion"])
                label = FER_CSV_LABELS[code]
            except (KeyError, ValueError, IndexError, TypeError):
                scan.problems.append(Problem(clip_id, where, f"unknown label: emotion code {row.get('emotion')!r}"))
                continue
            split = normalise_split(row.get("Usage") or "Training") or "train"
            if len((row.get("pixels") or "").split()) != 48 * 48:
                scan.problems.append(Problem(clip_id, where, "pixels field does not hold 48x48 values"))
                continue
            scan.candidates.append(Candidate(clip_id, where, label, split, "", "fer2013", "image"))
    return scan


def read_manifest(csv_path: Path) -> Scan:
    """A generic CSV manifest: columns path, label, optional split and speaker.

    Relative paths are resolved against the manifest's folder. An empty label means
    unlabelled (fine for prediction); a missing split defaults to ``test``.
    """
    scan = Scan("csv")
    with open(csv_path, newline="") as fh:
        reader = csv.DictReader(fh)
        if not reader.fieldnames or "path" not in reader.fieldnames:
            raise ValueError(f"{csv_path}: a manifest needs a 'path' column (found {reader.fieldnames})")
        for row in reader:
            path = Path(row["path"].strip())
            if not path.is_absolute():
                path = (csv_path.parent / path).resolve()
            clip_id = path.stem
            kind = media_kind(path) or "video"
            raw = (row.get("label") or "").strip()
            label = ""
            if raw:
                label = _label_or_problem(raw, path, clip_id, scan)
                if label is None:
                    continue
            split = normalise_split(row.get("split") or "test")
            if split is None:
                scan.problems.append(Problem(clip_id, str(path), f"unknown split {row.get('split')!r}"))
                continue
            speaker = (row.get("speaker") or "").strip()
            scan.candidates.append(Candidate(clip_id, str(path), label, split, speaker, "csv", kind))
    return scan


def read_unlabelled(root: Path) -> Scan:
    """Any folder of media files without labels (e.g. new videos to predict on): split test."""
    scan = Scan("videos")
    for path in iter_files(root):
        kind = media_kind(path)
        if kind in ("video", "audio"):
            scan.candidates.append(Candidate(path.stem, str(path), "", "test", "", "videos", kind))
    return scan
