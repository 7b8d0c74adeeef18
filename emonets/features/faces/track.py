"""Follow one main face through a clip: detect sparsely, track by landmarks in between.

The main face is the largest one at the first detection. Afterwards a detection only counts
if it continues the track (near the predicted position, of a similar size), so a second face
entering the frame never steals it. Between detections a frame's box comes from the previous
frame's landmarks, placed the way the detector frames a face (calibrated at each detection),
so the landmark predictor sees the boxes it was trained on. Tracked frames are held back until
the next detection confirms the face is still there; if it is not, each held frame is checked
with its own detection, so sparse detection finds faces in the same frames as detecting every
frame would. Memory stays bounded by ``detect_every`` frames.

Pure logic: the detector is any object with ``search(grey)``, ``near(grey, box)`` (lists of
Box) and ``landmarks(grey, box)`` ((68, 2) array), so tests can drive it with synthetic faces.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from emonets.features.faces.align import anchor_points


@dataclass(frozen=True)
class Box:
    """A face box in full-resolution pixels (face_recognition's top, right, bottom, left order)."""

    top: float
    right: float
    bottom: float
    left: float
    score: float = 0.0

    @property
    def width(self) -> float:
        return self.right - self.left

    @property
    def height(self) -> float:
        return self.bottom - self.top

    @property
    def centre(self) -> np.ndarray:
        return np.array([(self.left + self.right) / 2, (self.top + self.bottom) / 2])

    @property
    def area(self) -> float:
        return max(self.width, 0.0) * max(self.height, 0.0)

    def inside(self, shape: tuple[int, ...], *, slack: float = 0.25) -> bool:
        """Whether the box lies in an H x W frame, allowing ``slack`` of its size outside."""
        h, w = shape[:2]
        sx, sy = slack * self.width, slack * self.height
        return self.left >= -sx and self.top >= -sy and self.right <= w + sx and self.bottom <= h + sy


def landmark_frame(points: np.ndarray) -> tuple[np.ndarray, float]:
    """Centre and scale of a face from its landmarks: the anchors' centroid and RMS spread."""
    anchors = anchor_points(points)
    centre = anchors.mean(0)
    return centre, float(np.sqrt(((anchors - centre) ** 2).sum(1).mean()))


@dataclass
class BoxModel:
    """Where the detector puts its box relative to a face's landmarks (in landmark-scale units).

    Learned from each detection (a running mean), so a box built from landmarks frames the
    face as the detector would have.
    """

    offset: np.ndarray = field(default_factory=lambda: np.zeros(2))
    size: np.ndarray = field(default_factory=lambda: np.ones(2))
    seen: int = 0

    def update(self, box: Box, points: np.ndarray, *, rate: float = 0.5) -> None:
        centre, scale = landmark_frame(points)
        offset = (box.centre - centre) / scale
        size = np.array([box.width, box.height]) / scale
        a = 1.0 if self.seen == 0 else rate
        self.offset = (1 - a) * self.offset + a * offset
        self.size = (1 - a) * self.size + a * size
        self.seen += 1

    def box(self, points: np.ndarray) -> Box:
        centre, scale = landmark_frame(points)
        cx, cy = centre + self.offset * scale
        hw, hh = self.size * scale / 2
        return Box(cy - hh, cx + hw, cy + hh, cx - hw)


def pick_main(boxes: list[Box]) -> Box | None:
    """The main face among fresh detections: the largest."""
    return max(boxes, key=lambda b: b.area) if boxes else None


def match(expected: Box, boxes: list[Box], *, max_shift: float = 0.5, max_ratio: float = 1.5) -> Box | None:
    """The detection that continues a track expected at ``expected``, or None.

    A candidate's centre must lie within ``max_shift`` box widths of the expected centre and
    its width within a factor ``max_ratio``; the nearest (in position and log size) wins.
    """
    best, best_cost = None, np.inf
    for b in boxes:
        shift = float(np.linalg.norm(b.centre - expected.centre)) / max(expected.width, 1.0)
        ratio = abs(np.log(max(b.width, 1e-6) / max(expected.width, 1e-6)))
        if shift <= max_shift and ratio <= np.log(max_ratio) and shift + ratio < best_cost:
            best, best_cost = b, shift + ratio
    return best


def plausible(points: np.ndarray, previous: np.ndarray, *, max_scale_change: float = 1.25,
              max_shift: float = 0.6) -> bool:
    """Whether tracked landmarks continue the previous frame's face (a lost track drifts,
    shrinks or blows up)."""
    if not np.isfinite(points).all():
        return False
    c0, s0 = landmark_frame(previous)
    c1, s1 = landmark_frame(points)
    if s0 <= 0 or s1 <= 2.0:
        return False
    ratio = s1 / s0
    return 1 / max_scale_change <= ratio <= max_scale_change and np.linalg.norm(c1 - c0) <= max_shift * s0


class Detector(Protocol):
    def search(self, grey: np.ndarray) -> list[Box]: ...
    def near(self, grey: np.ndarray, box: Box) -> list[Box]: ...
    def landmarks(self, grey: np.ndarray, box: Box) -> np.ndarray: ...


@dataclass
class TrackedFrame:
    """One frame's outcome, emitted in frame order: landmarks of the main face, or None."""

    index: int
    t: float
    image: np.ndarray
    points: np.ndarray | None
    detected: bool = False  # landmarks from a detector box (not a tracked one)


@dataclass
class TrackStats:
    frames: int = 0
    found: int = 0
    detected: int = 0          # found frames whose box came from a detection
    tracked: int = 0           # found frames whose box came from the previous landmarks
    searches: int = 0          # whole-frame searches (start, lost face)
    second_faces_seen: int = 0  # frames where a detection also saw another face
    lost: int = 0              # times the track was lost


class FaceTracker:
    """Feed frames with ``push``; collect TrackedFrames from ``push`` and ``finish`` (in order).

    ``detect_every``: sampled frames between detections while the track holds (1 = every
    frame). ``reacquire_after``: seconds a lost track waits for its own face (near where it
    was, of a similar size) before any face may start a new track (None: never).
    """

    def __init__(self, detector: Detector, *, detect_every: int = 3, refine: int = 0,
                 reacquire_after: float | None = 2.0):
        if detect_every < 1:
            raise ValueError(f"detect_every must be >= 1, got {detect_every}")
        self.det = detector
        self.detect_every = detect_every
        self.refine = refine
        self.reacquire_after = reacquire_after
        self.stats = TrackStats()
        self._model = BoxModel()
        self._points: np.ndarray | None = None  # landmarks of the last frame of an active track
        self._last_box: Box | None = None       # the last detected box of the main face
        self._lost_at: float | None = None
        self._pending: list[TrackedFrame] = []

    # -- public ---------------------------------------------------------------------------
    def push(self, index: int, t: float, grey: np.ndarray) -> list[TrackedFrame]:
        self.stats.frames += 1
        if self._points is None:
            return [self._start(index, t, grey)]
        predicted = self._model.box(self._points)
        if len(self._pending) + 1 < self.detect_every and predicted.inside(grey.shape):
            points = self._landmarks(grey, predicted)
            if plausible(points, self._points):
                self._points = points
                self._pending.append(TrackedFrame(index, t, grey, points))
                return []
        box = match(predicted, self._near(grey, predicted))
        if box is not None:
            return self._confirm() + [self._found(index, t, grey, box)]
        return self._verify() + [self._lose(index, t, grey)]

    def finish(self) -> list[TrackedFrame]:
        """Settle the frames still held back (the clip ended between detections)."""
        if not self._pending:
            return []
        last = self._pending[-1]
        predicted = self._model.box(last.points)
        if match(predicted, self._near(last.image, predicted)) is not None:
            return self._confirm()
        return self._verify()

    # -- steps ----------------------------------------------------------------------------
    def _start(self, index: int, t: float, grey: np.ndarray) -> TrackedFrame:
        """No active track: search the whole frame for the main face (or the lost one)."""
        self.stats.searches += 1
        boxes = self.det.search(grey)
        if len(boxes) > 1:
            self.stats.second_faces_seen += 1
        waiting = (self._last_box is not None and self._lost_at is not None
                   and (self.reacquire_after is None or t - self._lost_at < self.reacquire_after))
        box = match(self._last_box, boxes, max_shift=1.5, max_ratio=2.0) if waiting else pick_main(boxes)
        if box is None:
            return self._out(TrackedFrame(index, t, grey, None))
        return self._found(index, t, grey, box)

    def _found(self, index: int, t: float, grey: np.ndarray, box: Box) -> TrackedFrame:
        points = self.det.landmarks(grey, box)
        self._model.update(box, points)
        self._points, self._last_box, self._lost_at = points, box, None
        return self._out(TrackedFrame(index, t, grey, points, detected=True))

    def _lose(self, index: int, t: float, grey: np.ndarray) -> TrackedFrame:
        """The face is not where the track expects it: search the frame (it may have moved fast)."""
        self._points = None
        self._lost_at = t
        self.stats.lost += 1
        return self._start(index, t, grey)

    def _confirm(self) -> list[TrackedFrame]:
        held, self._pending = self._pending, []
        return [self._out(f) for f in held]

    def _verify(self) -> list[TrackedFrame]:
        """The face vanished by the next detection: keep each held frame only if a detection
        there confirms it (re-landmarked from that detection's box)."""
        held, self._pending = self._pending, []
        out = []
        for f in held:
            expected = self._model.box(f.points)
            box = match(expected, self._near(f.image, expected))
            if box is None:
                out.append(self._out(TrackedFrame(f.index, f.t, f.image, None)))
            else:
                points = self.det.landmarks(f.image, box)
                self._last_box = box
                out.append(self._out(TrackedFrame(f.index, f.t, f.image, points, detected=True)))
        return out

    # -- helpers --------------------------------------------------------------------------
    def _near(self, grey: np.ndarray, box: Box) -> list[Box]:
        boxes = self.det.near(grey, box)
        if len(boxes) > 1:
            self.stats.second_faces_seen += 1
        return boxes

    def _landmarks(self, grey: np.ndarray, box: Box) -> np.ndarray:
        points = self.det.landmarks(grey, box)
        for _ in range(self.refine):  # re-place the box on the new landmarks: follows motion
            points = self.det.landmarks(grey, self._model.box(points))
        return points

    def _out(self, frame: TrackedFrame) -> TrackedFrame:
        if frame.points is not None:
            self.stats.found += 1
            if frame.detected:
                self.stats.detected += 1
            else:
                self.stats.tracked += 1
        return frame

    def summary(self) -> dict[str, Any]:
        s = self.stats
        return {
            "frames": s.frames, "found": s.found,
            "found_rate": round(s.found / s.frames, 4) if s.frames else 0.0,
            "detected": s.detected, "tracked": s.tracked, "searches": s.searches,
            "second_faces_seen": s.second_faces_seen, "lost": s.lost,
        }
