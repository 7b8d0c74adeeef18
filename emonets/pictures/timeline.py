"""What the model saw in a clip, over time: the data behind `predict --plot` and `--annotate`.

Built from the same feature rows and decoders the prediction uses (emonets.training_data over
the `faces` and `mfcc` tables), so a picture shows what the model was given: the face
specialist's probabilities on every sampled frame where the face was found, the audio
specialist's on every MFCC frame its network scored, and the clip's fused result as
emonets.predict.predict_clips gives it.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from emonets.fusion.model import FusedModel
from emonets.labels import EMOTIONS
from emonets.media.paths import portable_path
from emonets.predict import predict_clips
from emonets.specialists.base import N_CLASSES
from emonets.training_data import clip_set, decode_rows

N_LANDMARKS = 68


def _empty(*shape: int) -> np.ndarray:
    return np.full((0, *shape), np.nan, np.float32)


@dataclass
class Timeline:
    """One clip's per-frame view (see the module docstring). Times are seconds as the tables hold
    them (the `faces` times are the video frames' own presentation times)."""

    clip_id: str
    path: str                                   # display text (clips.path)
    source: str                                 # the form every opener takes (emonets.media.paths.to_fs)
    label: str | None = None                    # the fused (or single model's) label
    probabilities: np.ndarray | None = None     # (7,), over EMOTIONS
    true_label: str | None = None
    model: str = "fused"                        # "fused", or the single specialist's name
    specialists: dict[str, dict] = field(default_factory=dict)  # clip-level view of each (predict_clips)
    missing: list[str] = field(default_factory=list)            # specialists that could not score it
    face_model: bool = False                    # the model has a face specialist
    face_t: np.ndarray = field(default_factory=lambda: np.zeros(0))            # (F,) every sampled frame
    face_frame: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # (F,) sampled index
    face_found: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))  # (F,)
    face_proba: np.ndarray = field(default_factory=lambda: _empty(N_CLASSES))   # (F, 7), NaN: no face
    face_landmarks: np.ndarray = field(default_factory=lambda: _empty(N_LANDMARKS, 2))  # (F, 68, 2) px
    audio_model: bool = False                   # the model has an audio specialist
    audio_t: np.ndarray = field(default_factory=lambda: np.zeros(0))           # (A,) scored MFCC frames
    audio_proba: np.ndarray = field(default_factory=lambda: _empty(N_CLASSES))  # (A, 7)

    @property
    def face_boxes(self) -> np.ndarray:
        """(F, 4) x0, y0, x1, y1 around the 68 landmarks (brows to chin), in the upright frame's
        pixels; NaN where there are none (no face, or still images)."""
        pts = self.face_landmarks
        if len(pts) == 0:
            return np.zeros((0, 4), np.float32)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # "All-NaN slice": a frame without a face
            return np.concatenate([np.nanmin(pts, axis=1), np.nanmax(pts, axis=1)], axis=1)

    def face_row_at(self, t: float) -> int | None:
        """The sampled face frame a video frame at ``t`` seconds shows: the last one at or before
        ``t``, held for at most 1.5 sampling steps (None before the first or past the hold)."""
        if len(self.face_t) == 0:
            return None
        i = int(np.searchsorted(self.face_t, t + 1e-6, side="right")) - 1
        if i < 0 or t - self.face_t[i] > 1.5 * _step(self.face_t):
            return None
        return i

    def face_so_far(self, t: float) -> np.ndarray | None:
        """(7,) the face specialist's frame probabilities averaged over the found faces up to ``t``."""
        return _mean_until(self.face_t, self.face_proba, t)

    def audio_so_far(self, t: float) -> np.ndarray | None:
        """(7,) the audio specialist's frame probabilities averaged up to ``t``."""
        return _mean_until(self.audio_t, self.audio_proba, t)


def top_classes(p: np.ndarray | None, k: int = 2) -> list[tuple[str, float]]:
    """The ``k`` most probable classes as (name, probability), most probable first."""
    if p is None:
        return []
    order = np.argsort(-np.asarray(p, np.float64), kind="stable")[:k]
    return [(EMOTIONS[i], float(p[i])) for i in order]


def clip_timelines(model, clips: pd.DataFrame, tables: dict[str, pd.DataFrame], *,
                   predictions: list[dict[str, Any]] | None = None) -> dict[str, Timeline]:
    """Per clip id (in ``clips`` order), the clip's Timeline.

    ``model``, ``clips`` and ``tables`` are what emonets.predict.predict_clips takes;
    ``predictions``, its result for these clips, is reused when given (else computed). The
    `faces` and `mfcc` tables are read when present, whether or not the model uses them, so
    a video can be annotated with the tracked face even by a model without a face specialist.
    """
    members = model.specialists if isinstance(model, FusedModel) else {model.name: model}
    if predictions is None:
        predictions = predict_clips(model, clips, tables)
    by_id = {p["clip_id"]: p for p in predictions}
    faces = _face_parts(members.get("face_cnn"), clips, tables.get("faces"))
    audio = _audio_parts(members.get("audio"), clips, tables.get("mfcc"))
    raw = clips["path_bytes"] if "path_bytes" in clips.columns else [None] * len(clips)
    out = {}
    for clip, path_bytes in zip(clips.itertuples(index=False), raw):
        pred = by_id.get(clip.clip_id, {})
        probs = pred.get("probabilities")
        out[clip.clip_id] = Timeline(
            clip_id=clip.clip_id, path=clip.path,
            source=portable_path(bytes(path_bytes)) if isinstance(path_bytes, (bytes, bytearray)) else clip.path,
            label=pred.get("label"),
            probabilities=np.array([probs[e] for e in EMOTIONS], np.float32) if probs else None,
            true_label=pred.get("true_label"), model=model.name,
            specialists=pred.get("specialists", {}), missing=pred.get("missing", []),
            face_model="face_cnn" in members, audio_model="audio" in members,
            **faces.get(clip.clip_id, {}), **audio.get(clip.clip_id, {}),
        )
    return out


def _face_parts(face_model, clips: pd.DataFrame, faces: pd.DataFrame | None) -> dict[str, dict]:
    """Per clip: every sampled frame's time, found flag, landmarks, and the face specialist's
    probabilities on the found ones (one predict_frames call for all clips)."""
    if faces is None or len(faces) == 0:
        return {}
    rows = faces[faces["clip_id"].isin(set(clips["clip_id"]))].sort_values(["clip_id", "frame"], kind="stable")
    found = rows["found"].to_numpy(bool)
    proba = np.full((len(rows), N_CLASSES), np.nan, np.float32)
    if face_model is not None and found.any():
        proba[found] = face_model.predict_frames(decode_rows("faces", rows[found]))
    points = np.stack([_landmarks(v) for v in rows["landmarks"]]) if len(rows) else _empty(N_LANDMARKS, 2)
    ids = rows["clip_id"].to_numpy()
    out = {}
    for cid in dict.fromkeys(ids):
        sel = ids == cid
        out[cid] = {"face_t": rows["t"].to_numpy(np.float64)[sel], "face_frame": rows["frame"].to_numpy(np.int64)[sel],
                    "face_found": found[sel], "face_proba": proba[sel], "face_landmarks": points[sel]}
    return out


def _landmarks(value) -> np.ndarray:
    """(68, 2) from a flattened `faces.landmarks` cell; NaN when it holds none."""
    flat = np.asarray(value if value is not None else [], np.float32).reshape(-1)
    if flat.size != 2 * N_LANDMARKS:
        return np.full((N_LANDMARKS, 2), np.nan, np.float32)
    return flat.reshape(N_LANDMARKS, 2)


def _audio_parts(audio_model, clips: pd.DataFrame, mfcc: pd.DataFrame | None) -> dict[str, dict]:
    """Per clip: the audio specialist's frame probabilities and the times of the frames they score,
    on the ClipSet the specialist predicts from (emonets.training_data.clip_set)."""
    if audio_model is None or mfcc is None or len(mfcc) == 0:
        return {}
    cs = clip_set(clips, mfcc, "mfcc", "frame")
    rows = mfcc[mfcc["clip_id"].isin(set(cs.clip_ids))].sort_values(["clip_id", "frame"], kind="stable")
    times = {cid: part["t"].to_numpy(np.float64) for cid, part in rows.groupby("clip_id", sort=False)}
    step = int(audio_model.config.stride)
    out = {}
    for cid, probs in zip(cs.clip_ids, audio_model.frame_proba(cs)):
        t = times[cid][::step][: len(probs)]
        out[cid] = {"audio_t": t, "audio_proba": probs[: len(t)]}
    return out


def _step(t: np.ndarray) -> float:
    """The sampling step of a time axis (its median spacing; 0.1 s for a single sample)."""
    return float(np.median(np.diff(t))) if len(t) > 1 else 0.1


def _mean_until(t: np.ndarray, proba: np.ndarray, until: float) -> np.ndarray | None:
    rows = proba[: int(np.searchsorted(t, until + 1e-6, side="right"))]
    rows = rows[np.isfinite(rows).all(1)]
    return rows.mean(0) if len(rows) else None

