"""One reader per dataset layout. Each returns a Scan; none opens media (ingest probes later).

Paths in a Scan are file-system strs (emonets.media.paths: surrogate-escaped where a name is not
UTF-8), so any name the file system allows is kept exactly; clip ids are made display-safe by
Candidate/Problem. Entries under a root that are not regular files become problems (iter_files).
"""

from __future__ import annotations

import os
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
from emonets.datasets.csvfile import iter_csv_rows
from emonets.media.fingerprint import sha256_text
from emonets.labels import UnknownLabelError, normalise_label
from emonets.media.paths import display_path, to_fs

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
    for path in iter_files(root, scan.problems):
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
    for path in iter_files(root, scan.problems):
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
    for path in iter_files(root, scan.problems):
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
    for path in iter_files(root, scan.problems):
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
    """The original ``fer2013.csv`` (emotion, pixels, Usage). Rows become ``<csv>#<row>`` clips.

    A row's fingerprint is the sha256 of its pixel values (whitespace-normalised), not of the
    CSV file: identical images in two rows then share a fingerprint, exactly as identical JPEGs
    do in the folder form, and ingest's one-copy rule treats both forms alike; editing one row
    changes only that row's fingerprint.
    """
    scan = Scan("fer2013", policy={"source": "csv"})
    for row_no, row in enumerate(iter_csv_rows(csv_path, required=("emotion", "pixels"))):
        clip_id = f"fer2013-{row_no:05d}"
        where = f"{csv_path}#{row_no}"
        try:
            code = int(row["emotion"])
            label = FER_CSV_LABELS[code]
        except (KeyError, ValueError, IndexError, TypeError):
            scan.problems.append(Problem(clip_id, where, f"unknown label: emotion code {row.get('emotion')!r}"))
            continue
        split = normalise_split(row.get("Usage") or "Training") or "train"
        values = (row.get("pixels") or "").split()
        if len(values) != 48 * 48:
            scan.problems.append(Problem(clip_id, where, "pixels field does not hold 48x48 values"))
            continue
        digest = sha256_text("fer2013-pixels:" + " ".join(values))
        scan.candidates.append(Candidate(clip_id, where, label, split, "", "fer2013", "image", digest))
    return scan


def _manifest_path(text: str, folder: Path) -> Path:
    """A manifest's path cell as a file-system path: relative to the manifest's folder; a
    ``file://`` URI (percent-encoded bytes) can name files whose names are not UTF-8."""
    path = Path(to_fs(text))
    return path if path.is_absolute() else folder / path


def _inside(path: Path, folder: Path) -> bool:
    return Path(os.path.realpath(path)).is_relative_to(os.path.realpath(folder))


def read_manifest(csv_path: Path, *, allow_outside: bool = False) -> Scan:
    """A generic CSV manifest: columns path, label, optional split and speaker.

    Relative paths are resolved against the manifest's folder; a ``file://`` URI may give a
    name whose bytes are not UTF-8. A path that leaves the manifest's folder (``../``, an
    absolute path elsewhere, or a symlink inside it that points elsewhere) is refused with a
    problem row unless ``allow_outside``: a manifest handed over with a dataset must not make
    ingest open (and store the name and fingerprint of) files elsewhere on the machine. The
    stored path is the resolved one, so the file opened later is the file checked here; the
    clip id is the name as written in the manifest. An empty label means unlabelled (fine for
    prediction); a missing split defaults to ``test``.
    """
    scan = Scan("csv", policy={"allow_outside": allow_outside} if allow_outside else {})
    folder = csv_path.parent
    for row_no, row in enumerate(iter_csv_rows(csv_path, required=("path",)), start=2):
        text = (row.get("path") or "").strip()
        if not text:
            scan.problems.append(Problem(f"row-{row_no}", f"{csv_path}#{row_no}", f"row {row_no}: empty path"))
            continue
        given = _manifest_path(text, folder)
        clip_id = given.stem
        if "\x00" in str(given):
            scan.problems.append(Problem(clip_id, text, f"row {row_no}: path contains a NUL character"))
            continue
        path = given.resolve()
        if not allow_outside and not _inside(given, folder):
            scan.problems.append(Problem(
                clip_id, str(path), f"row {row_no}: path leaves the manifest's folder "
                f"({display_path(os.path.realpath(folder))}); refused (pass --allow-outside to accept it)"))
            continue
        kind = media_kind(path) or media_kind(given) or "video"
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
    for path in iter_files(root, scan.problems):
        kind = media_kind(path)
        if kind in ("video", "audio"):
            scan.candidates.append(Candidate(path.stem, str(path), "", "test", "", "videos", kind))
    return scan
