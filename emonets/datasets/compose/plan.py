"""Plan the composed benchmark: which face goes with which utterance, in which split.

Pure bookkeeping (no pixels, no files): the seeded pairing that keeps every face and every
voice in one split, and the ``ComposeConfig`` that says which actors go where.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from emonets.datasets.compose.sources import Face, Utterance
from emonets.labels import EMOTIONS

SPLIT_FOLDERS = {"train": "Train", "val": "Val", "test": "Test"}


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
               config: ComposeConfig, reuse_speech: int = 1) -> tuple[list[ClipPlan], dict]:
    """Pair faces with utterances per split and class; returns (plans, limits per split/class).

    ``reuse_speech`` > 1 lets each utterance voice up to that many clips, each time with another
    face (sets larger than the distinct voices allow, for scale measurements: such clips share
    their audio). Its first pass is the ``reuse_speech=1`` plan, so the smaller set is a subset.
    """
    if reuse_speech < 1:
        raise ValueError("reuse_speech must be at least 1")
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
            group_utts = [u for k in range(reuse_speech)
                          for u in _shuffled(group_utts, np.random.default_rng([seed, c, 1, s] + ([k] if k else [])))]
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
