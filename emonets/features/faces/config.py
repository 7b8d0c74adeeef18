"""The faces stage's settings, in a module of their own: reading them (to check whether a
partition is current) costs no detector, landmark model or image library import."""

from __future__ import annotations

from dataclasses import asdict, dataclass

DETECTORS = ("hog", "cnn")  # dlib's HOG (CPU) and its CNN (slow without CUDA)


@dataclass(frozen=True, kw_only=True)
class FaceConfig:
    """Sampling, detection, tracking and alignment settings (stored with the `faces` partitions)."""

    fps: float = 10.0                    # frames sampled per second of video
    size: int = 48                       # the aligned face is size x size grey (FER-2013: 48)
    detector: str = "hog"                # "hog" (CPU) or "cnn" (dlib's CNN: slow without CUDA)
    detect_every: int = 3                # sampled frames per detection while the track holds
    refine: int = 0                      # extra landmark passes on tracked frames (box re-placed)
    target_face_px: float = 100.0        # a crop is resized so the tracked face is ~this wide
    search_margin: float = 0.5           # crop margin around the face, in face widths per side
    search_upsample: int = 1             # finest whole-frame search: 1 finds faces down to ~40 px
    reacquire_after: float | None = 2.0  # s a lost face is waited for before another may start
    max_frames: int | None = None        # cap on sampled frames (None: whole clip)

    def to_dict(self) -> dict:
        return asdict(self)

    def __post_init__(self) -> None:
        """Checked when made, as the other stages' configs are: a bad value fails at once."""
        if self.detector not in DETECTORS:
            raise ValueError(f"FaceConfig.detector={self.detector!r}; choose from {', '.join(DETECTORS)}")
        if self.size < 8 or self.fps <= 0 or self.detect_every < 1 or self.target_face_px < 40:
            raise ValueError(f"FaceConfig out of range: {self}")
