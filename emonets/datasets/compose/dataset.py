"""The *composed* audio-video benchmark: real FER-2013 faces paired with real RAVDESS speech.

No freely shareable corpus of labelled emotional video with sound is at hand (AFEW is given out
on request), so this builds one from real parts, and it is always called "composed": each clip
shows one FER-2013 face (48x48 grey) of emotion E, upscaled (bicubic) onto a softly textured
mid-grey background and moving slightly (smooth random shift, scale and rotation), while one
RAVDESS utterance of the same emotion plays; the clip lasts as long as the utterance. Output is an
AFEW-style tree ``out_dir/<Train|Val|Test>/<Emotion>/composed-s<seed>-<split>-<class>-<nnnn>.mp4``
(H.264 + AAC), so the normal pipeline ingests it like any other dataset.

Splits follow the sources, so no face and no voice is in two splits (``split="all"``):

- Train: FER-2013 ``train`` faces + RAVDESS actors 01-10;
- Val:   FER-2013 ``val`` (PublicTest) faces (disjoint from Test's) + actors 11-14;
- Test:  FER-2013 ``val`` (PublicTest) faces + actors 15-18.

Train's voices plus Val's are the issue's "actors 01-14". Val's faces come from FER's held-out
split, not from FER train, because the face ConvNet learns from all of FER train: fusion weights
fitted on faces the ConvNet had memorised would trust it far too much. So the fusion weights are
fitted on clips no specialist trained on and reported on a Test split they never saw. FER val
has few disgust faces (56), so Val gets fewer disgust clips than Test (``limits`` in the
manifest says which source ran out). With ``split="train"|"val"|"test"`` every clip goes into
that one split and all sources are pooled (held-out FER faces used first). Each face image and each
utterance is used at most once, unless ``reuse_speech`` > 1 (scale measurements beyond the 1,440
RAVDESS speech files): then an utterance voices up to that many clips of its split, each with
another face, and the manifest and README say so. RAVDESS "calm" is not an EmoNets class: those files are dropped
(and counted); a class missing from either source is dropped too (and recorded). ``per_class``
caps clips per class per split; the same seed writes the same clips. ``compose.json`` records
every clip's sources, split, label and motion seed; ``README.txt`` carries the licences.

This module writes the tree and its manifest; the parts are ``compose_sources`` (scanning),
``compose_plan`` (pairing), ``compose_render`` (pixels, encoding) and ``compose_readme`` (text).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np

from data_catalog.atomic import write_bytes_atomic, write_json_atomic
from emonets.datasets.compose.plan import SPLIT_FOLDERS, ComposeConfig, plan_clips
from emonets.datasets.compose.readme import LICENCES, readme_text, split_policy
from emonets.datasets.compose.render import compose_clip, encode_jobs
from emonets.datasets.compose.sources import scan_faces, scan_speech
from emonets.labels import EMOTIONS

__all__ = ["MANIFEST", "RENDER_VERSION", "SPLIT_MODES", "ComposeConfig", "compose_clip", "compose_dataset",
           "is_composed", "plan_clips", "scan_faces", "scan_speech"]

SPLIT_MODES = ("all", "train", "val", "test")
MANIFEST = "compose.json"
RENDER_VERSION = 1  # bump when the rendered pixels change: clips of an older renderer are not reused


def compose_dataset(
    faces_root: Path | str,
    speech_root: Path | str,
    out_dir: Path | str,
    *,
    per_class: int | None = None,
    seed: int = 0,
    split: str = "all",
    fps: int = 25,
    max_seconds: float | None = None,
    config: ComposeConfig | None = None,
    workers: int = 1,
    progress: Callable[[int, int], None] | None = None,
    reuse_speech: int = 1,
) -> dict[str, Any]:
    """Write the composed benchmark into ``out_dir``; returns a summary (counts, timings, problems).

    Re-running with the same arguments reuses the clips already written (they are byte-identical
    anyway); clips of an earlier run that the new plan does not contain are removed. A folder
    that holds files but no ``compose.json`` is refused, so nobody's data gets mixed in.
    """
    if split not in SPLIT_MODES:
        raise ValueError(f"split must be one of {', '.join(SPLIT_MODES)}, not {split!r}")
    if per_class is not None and per_class < 1:
        raise ValueError("per_class must be at least 1")
    config = replace(config or ComposeConfig(), fps=fps, max_seconds=max_seconds)
    faces_root, speech_root, out_dir = Path(faces_root).resolve(), Path(speech_root).resolve(), Path(out_dir)
    started = time.perf_counter()
    faces, face_skips = scan_faces(faces_root)
    speech, speech_drops = scan_speech(speech_root)
    classes = [c for c in EMOTIONS if c in faces and c in speech]
    if not classes:
        raise ValueError(f"no emotion class has both faces ({sorted(faces)}) and speech ({sorted(speech)})")
    dropped_classes = {c: ("no speech" if c in faces else "no faces") for c in EMOTIONS
                       if (c in faces) != (c in speech)}
    if speech_drops.get("calm"):
        dropped_classes["calm"] = f"RAVDESS 'calm' is not an EmoNets class: {speech_drops['calm']} files dropped"
    plans, limits = plan_clips(faces, speech, classes=classes, per_class=per_class, seed=seed, split=split,
                               config=config, reuse_speech=reuse_speech)

    old = _previous_manifest(out_dir)
    config_dict = _config_dict(config)
    reusable = {}
    if (old and old.get("status") == "complete" and old.get("config") == config_dict
            and old.get("renderer") == RENDER_VERSION):
        reusable = {e["path"]: e for e in old.get("clips", []) if (out_dir / e["path"]).is_file()}
    header = {"name": "composed", "status": "incomplete", "renderer": RENDER_VERSION, "seed": seed, "split_mode": split, "per_class": per_class,
              "reuse_speech": reuse_speech,
              "config": config_dict, "sources": {"faces_root": str(faces_root), "speech_root": str(speech_root)}}
    write_json_atomic(out_dir / MANIFEST, {**header, "clips": []})  # a crash from here on reuses nothing
    keep = set()
    entries: dict[str, dict] = {}
    todo = []
    for plan in plans:
        prev = reusable.get(plan.rel)
        if prev is not None and all(prev.get(k) == v for k, v in plan.entry().items()):
            entries[plan.clip_id] = prev
            keep.add(plan.rel)
        else:
            todo.append(plan)
    removed = _remove_stale(out_dir, keep)

    problems = []
    timings = []
    jobs = [(p, str(out_dir / p.rel), config) for p in todo]
    by_id = {p.clip_id: p for p in todo}
    for k, (clip_id, info, error, seconds) in enumerate(encode_jobs(jobs, workers), 1):
        if error is None:
            entries[clip_id] = {**by_id[clip_id].entry(), **info}
            timings.append(seconds)
        else:
            problems.append({"clip_id": clip_id, "path": by_id[clip_id].rel, "reason": error})
        if progress:
            progress(k, len(jobs))
    clips = [entries[p.clip_id] for p in plans if p.clip_id in entries]
    counts: dict[str, dict[str, int]] = {}
    for e in clips:
        counts.setdefault(e["split"], {}).setdefault(e["label"], 0)
        counts[e["split"]][e["label"]] += 1
    manifest = {
        **header,
        "status": "complete",
        "created": time.strftime("%Y-%m-%d %H:%M:%S"),
        "description": "composed audio-video benchmark: real FER-2013 faces (animated) + real RAVDESS "
                       "speech of the same emotion; not AFEW, not recorded video",
        "split_policy": split_policy(split, config),
        "classes": classes,
        "dropped_classes": dropped_classes,
        "dropped_speech_files": dict(speech_drops),
        "skipped_face_folders": dict(face_skips),
        "counts": counts,
        "limits": limits,
        "licences": LICENCES,
        "problems": problems,
        "clips": clips,
    }
    write_bytes_atomic(out_dir / "README.txt", readme_text(manifest).encode())
    write_json_atomic(out_dir / MANIFEST, manifest)
    return {
        "out_dir": str(out_dir),
        "clips": len(clips),
        "encoded": len(timings),
        "reused": len(keep),
        "removed": removed,
        "counts": counts,
        "classes": classes,
        "dropped_classes": dropped_classes,
        "problems": problems,
        "seconds": round(time.perf_counter() - started, 2),
        "seconds_per_clip": round(float(np.mean(timings)), 3) if timings else None,
        "media_seconds": round(sum(e["duration"] for e in clips), 1),
    }


def is_composed(root: Path | str) -> bool:
    """Whether a data root was written by ``compose_dataset`` (reports name such data "composed")."""
    path = Path(root) / MANIFEST
    try:
        return json.loads(path.read_text()).get("name") == "composed"
    except (OSError, ValueError):
        return False


def _config_dict(config: ComposeConfig) -> dict[str, Any]:
    return json.loads(json.dumps(asdict(config)))  # tuples -> lists, as they come back from JSON


def _previous_manifest(out_dir: Path) -> dict | None:
    if not out_dir.exists():
        return None
    if not out_dir.is_dir():
        raise NotADirectoryError(f"{out_dir}: exists and is not a folder")
    manifest = out_dir / MANIFEST
    if manifest.is_file():
        try:
            return json.loads(manifest.read_text())
        except ValueError:
            return {}
    if any(p for p in out_dir.iterdir() if not p.name.startswith(".")):
        raise FileExistsError(f"{out_dir}: holds files but no {MANIFEST}; refusing to write a composed "
                              "dataset into it (choose an empty or new folder)")
    return None


def _remove_stale(out_dir: Path, keep: set[str]) -> int:
    """Delete composed clips (ours by name) that the new plan does not keep, and temp files a
    killed run left behind."""
    removed = 0
    for folder in SPLIT_FOLDERS.values():
        for path in sorted((out_dir / folder).glob("*/composed-*.mp4")):
            if path.relative_to(out_dir).as_posix() not in keep:
                path.unlink()
                removed += 1
        for path in (out_dir / folder).glob("*/.tmp-composed-*"):
            path.unlink(missing_ok=True)
    return removed
