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
utterance is used at most once. RAVDESS "calm" is not an EmoNets class: those files are dropped
(and counted); a class missing from either source is dropped too (and recorded). ``per_class``
caps clips per class per split; the same seed writes the same clips. ``compose.json`` records
every clip's sources, split, label and motion seed; ``README.txt`` carries the licences.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from data_catalog.atomic import write_bytes_atomic, write_json_atomic
from emonets.datasets.base import IMAGE_EXTS, media_kind, normalise_split
from emonets.datasets.readers import RAVDESS_EMOTIONS, RAVDESS_NAME
from emonets.errors import ClipError
from emonets.labels import EMOTIONS, UnknownLabelError, normalise_label

SPLIT_MODES = ("all", "train", "val", "test")
SPLIT_FOLDERS = {"train": "Train", "val": "Val", "test": "Test"}
MANIFEST = "compose.json"
RENDER_VERSION = 1  # bump when the rendered pixels change: clips of an older renderer are not reused
LICENCES = {
    "fer2013": "FER-2013 (ICML 2013 representation-learning challenge, Kaggle): released for research use.",
    "ravdess": "RAVDESS (Livingstone & Russo 2018, PLoS ONE 13(5): e0196391): CC BY-NC-SA 4.0 — "
               "derived clips are non-commercial and shared alike, with attribution.",
}


@dataclass(frozen=True)
class ComposeConfig:
    """How clips look and which actors go where; stored in ``compose.json``."""

    width: int = 320
    height: int = 240
    face_px: int = 176                 # side of the upscaled 48x48 face, pixels
    fps: int = 25
    sr: int = 16000                    # audio rate of the written clips, Hz
    max_shift: float = 10.0            # pixels
    max_scale: float = 0.06            # relative change of the face size
    max_rotation: float = 5.0          # degrees
    max_seconds: float | None = None   # cut utterances (and clips) to this length (tests)
    crf: int = 23
    train_actors: tuple[int, int] = (1, 10)   # inclusive ranges
    val_actors: tuple[int, int] = (11, 14)
    test_actors: tuple[int, int] = (15, 18)


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


# --------------------------------------------------------------------------- sources


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


# --------------------------------------------------------------------------- plan


@dataclass(frozen=True)
class ClipPlan:
    clip_id: str
    rel: str            # output path under out_dir
    split: str
    label: str
    face: Face
    utterance: Utterance
    motion_seed: tuple[int, ...]

    def entry(self) -> dict[str, Any]:
        return {"clip_id": self.clip_id, "path": self.rel, "split": self.split, "label": self.label,
                "face": self.face.rel, "face_pool": self.face.pool, "speech": self.utterance.rel,
                "actor": self.utterance.actor, "speaker": f"ravdess-{self.utterance.actor:02d}",
                "motion_seed": list(self.motion_seed)}


def _in(actor: int, bounds: tuple[int, int]) -> bool:
    return bounds[0] <= actor <= bounds[1]


def plan_clips(faces: dict[str, dict[str, list[Face]]], speech: dict[str, list[Utterance]], *,
               classes: list[str], per_class: int | None, seed: int, split: str,
               config: ComposeConfig) -> tuple[list[ClipPlan], dict]:
    """Pair faces with utterances per split and class; returns (plans, limits per split/class)."""
    plans: list[ClipPlan] = []
    limits: dict[str, dict[str, dict]] = {}
    for label in classes:
        c = EMOTIONS.index(label)
        shuffle = np.random.default_rng([seed, c, 0])
        train_faces = _shuffled(faces[label].get("train", []), shuffle)
        heldout_faces = _shuffled(faces[label].get("heldout", []), shuffle)
        utts = speech[label]
        if split == "all":
            groups = [("train", train_faces, config.train_actors), ("test", heldout_faces, config.test_actors),
                      ("val", heldout_faces, config.val_actors)]
        else:
            groups = [(split, heldout_faces + train_faces, None)]
        used: dict[int, int] = {}  # faces taken from each pool so far: Val's come after Test's
        for s_name, pool, actors in groups:
            s = tuple(SPLIT_FOLDERS).index(s_name)
            group_utts = [u for u in utts if actors is None or _in(u.actor, actors)]
            group_utts = _shuffled(group_utts, np.random.default_rng([seed, c, 1, s]))
            offset = used.get(id(pool), 0)
            # Val walks the shared pool from its far end, so a smaller per_class gives a subset
            # of a larger one's clips (Test's faces do not shift Val's).
            available = pool[offset:][::-1] if (split == "all" and s_name == "val") else pool[offset:]
            n = min(len(group_utts), len(available), per_class if per_class is not None else len(group_utts))
            limited_by = ("per_class" if per_class is not None and n == per_class else
                          "speech" if n == len(group_utts) else "faces")
            limits.setdefault(s_name, {})[label] = {"faces": len(available), "speech": len(group_utts),
                                                    "clips": n, "limited_by": limited_by}
            used[id(pool)] = offset + n
            for i in range(n):
                clip_id = f"composed-s{seed}-{s_name}-{label}-{i:04d}"
                rel = f"{SPLIT_FOLDERS[s_name]}/{label.capitalize()}/{clip_id}.mp4"
                plans.append(ClipPlan(clip_id, rel, s_name, label, available[i], group_utts[i], (seed, s, c, i)))
    return plans, limits


def _shuffled(items: list, rng: np.random.Generator) -> list:
    return [items[i] for i in rng.permutation(len(items))]


# --------------------------------------------------------------------------- rendering


def smooth_path(n: int, fps: float, rng: np.random.Generator, *, components: int = 3) -> np.ndarray:
    """A smooth random curve in [-1, 1] over n frames: a few slow sinusoids (0.05-0.5 Hz)."""
    t = np.arange(n) / fps
    freqs = rng.uniform(0.05, 0.5, components)
    phases = rng.uniform(0, 2 * np.pi, components)
    amps = rng.uniform(0.3, 1.0, components)
    curve = (amps[:, None] * np.sin(2 * np.pi * freqs[:, None] * t[None] + phases[:, None])).sum(0)
    return curve / amps.sum()


def background(rng: np.random.Generator, config: ComposeConfig) -> np.ndarray:
    """A neutral mid-grey frame with a soft low-frequency texture and a faint tint (H, W, 3 uint8)."""
    from PIL import Image

    coarse = rng.normal(0, 1, (6, 8, 4)).astype(np.float32)  # one luminance + three faint colour layers
    tint = rng.uniform(-4, 4, 3)
    layers = [np.asarray(Image.fromarray(coarse[:, :, k]).resize((config.width, config.height), Image.BICUBIC))
              for k in range(4)]
    texture = 8 * layers[0][:, :, None] + 2.5 * np.stack(layers[1:], -1)
    return np.clip(124 + tint + texture, 0, 255).astype(np.uint8)


def face_mask(side: int = 48, feather: float = 4.0) -> np.ndarray:
    """Opacity of the face square: 1 inside, fading to 0 over ``feather`` source pixels at the edge."""
    idx = np.arange(side) + 0.5
    edge = np.minimum(idx, side - idx)
    return np.clip(np.minimum.outer(edge, edge) / feather, 0, 1).astype(np.float32)


def render_frames(face: np.ndarray, n_frames: int, rng: np.random.Generator,
                  config: ComposeConfig) -> Iterator[np.ndarray]:
    """The clip's RGB frames: the face upscaled (bicubic) and moving smoothly over the background."""
    from PIL import Image

    side = face.shape[0]
    bg = background(rng, config).astype(np.float32)
    dx, dy, ds, da = (smooth_path(n_frames, config.fps, rng) for _ in range(4))
    face_img = Image.fromarray(np.ascontiguousarray(face, np.uint8))
    mask_img = Image.fromarray(face_mask(side))
    size = (config.width, config.height)
    for i in range(n_frames):
        scale = config.face_px / side * (1 + config.max_scale * ds[i])
        theta = math.radians(config.max_rotation * da[i])
        cx = config.width / 2 + config.max_shift * dx[i]
        cy = config.height / 2 + config.max_shift * dy[i]
        # Inverse map (output pixel -> face pixel): rotate by -theta, unscale, recentre.
        cos, sin = math.cos(theta) / scale, math.sin(theta) / scale
        data = (cos, sin, side / 2 - cos * cx - sin * cy, -sin, cos, side / 2 + sin * cx - cos * cy)
        layer = np.asarray(face_img.transform(size, Image.AFFINE, data, resample=Image.BICUBIC), np.float32)
        alpha = np.asarray(mask_img.transform(size, Image.AFFINE, data, resample=Image.BILINEAR), np.float32)
        alpha = np.clip(alpha, 0, 1)[:, :, None]
        yield np.clip(bg * (1 - alpha) + layer[:, :, None] * alpha + 0.5, 0, 255).astype(np.uint8)


def compose_clip(plan: ClipPlan, out_path: Path | str, config: ComposeConfig) -> dict[str, Any]:
    """Render and encode one clip; raises ClipError (MediaError) if a source cannot be read."""
    from emonets.audio import load_audio
    from emonets.images import load_grey_image
    from emonets.media_writer import write_video

    face = load_grey_image(plan.face.path, size=48)
    audio = load_audio(plan.utterance.path, sr=config.sr, max_seconds=config.max_seconds)
    duration = len(audio) / config.sr
    n_frames = max(1, math.ceil(duration * config.fps))
    rng = np.random.default_rng(list(plan.motion_seed))
    Path(out_path).parent.mkdir(parents=True, exist_ok=True)
    write_video(out_path, render_frames(face, n_frames, rng, config), fps=config.fps, audio=audio,
                sr=config.sr, crf=config.crf)
    return {"duration": round(duration, 4), "frames": n_frames}


def _encode_job(job: tuple[ClipPlan, str, ComposeConfig]) -> tuple[str, dict[str, Any] | None, str | None, float]:
    plan, out_path, config = job
    started = time.perf_counter()
    try:
        info = compose_clip(plan, out_path, config)
        return plan.clip_id, info, None, time.perf_counter() - started
    except ClipError as err:
        return plan.clip_id, None, str(err), time.perf_counter() - started


def _run(jobs: list, workers: int) -> Iterator[tuple]:
    """Encode in this process, or in ``workers`` processes (results in plan order either way)."""
    if workers <= 1 or len(jobs) <= 1:
        yield from map(_encode_job, jobs)
        return
    with ProcessPoolExecutor(workers) as pool:
        yield from pool.map(_encode_job, jobs)


# --------------------------------------------------------------------------- the dataset


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
                               config=config)

    old = _previous_manifest(out_dir)
    config_dict = _config_dict(config)
    reusable = {}
    if (old and old.get("status") == "complete" and old.get("config") == config_dict
            and old.get("renderer") == RENDER_VERSION):
        reusable = {e["path"]: e for e in old.get("clips", []) if (out_dir / e["path"]).is_file()}
    header = {"name": "composed", "status": "incomplete", "renderer": RENDER_VERSION, "seed": seed, "split_mode": split, "per_class": per_class,
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
    for k, (clip_id, info, error, seconds) in enumerate(_run(jobs, workers), 1):
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
        "split_policy": _split_policy(split, config),
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
    write_bytes_atomic(out_dir / "README.txt", _readme(manifest).encode())
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


def _split_policy(split: str, config: ComposeConfig) -> dict[str, str]:
    if split != "all":
        return {split: "every clip; faces from all FER-2013 folders (held-out val/test faces first), "
                       "voices from every RAVDESS actor"}
    a = config

    def actors(r):
        return f"RAVDESS actors {r[0]:02d}-{r[1]:02d}"

    return {"train": f"FER-2013 train faces + {actors(a.train_actors)}",
            "val": f"FER-2013 val (PublicTest) faces not used by test + {actors(a.val_actors)}",
            "test": f"FER-2013 val (PublicTest) faces + {actors(a.test_actors)}"}


def _readme(m: dict) -> str:
    cfg = m["config"]
    lines = [
        "EmoNets COMPOSED audio-video benchmark (not AFEW, not recorded video)",
        "",
        "Each clip shows one real FER-2013 face photo (48x48 grey, upscaled bicubic to "
        f"{cfg['face_px']} px) on a neutral grey background, moving slightly (shift <= {cfg['max_shift']} px, "
        f"scale +-{cfg['max_scale']:.0%}, rotation <= {cfg['max_rotation']} deg), while one real RAVDESS "
        "utterance of the same emotion plays. Report results on it as 'composed'.",
        "",
        f"Written by emonets.compose.compose_dataset (seed {m['seed']}, split mode {m['split_mode']}, "
        f"per class {m['per_class'] or 'all'}); every clip's sources are listed in compose.json.",
        f"Layout: <Train|Val|Test>/<Emotion>/<clip>.mp4, H.264 + AAC, {cfg['width']}x{cfg['height']} at "
        f"{cfg['fps']} fps, audio {cfg['sr']} Hz mono; clip length = utterance length.",
        "",
        "Splits (no face and no voice is in two splits):",
        *(f"  {s}: {text}" for s, text in m["split_policy"].items()),
        "",
        "Classes: " + ", ".join(m["classes"]),
        *(f"Dropped: {c} ({why})" for c, why in m["dropped_classes"].items()),
        "",
        "Licences of the sources (they carry over to these clips):",
        *(f"  - {text}" for text in m["licences"].values()),
        "Do not redistribute commercially; keep this file with the clips.",
    ]
    return "\n".join(lines) + "\n"
