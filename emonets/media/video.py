"""Probe media files and stream video frames at a target rate with PyAV (no ffmpeg binary)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import av
import numpy as np

from emonets.errors import MediaError, NoVideoError
from emonets.media.paths import display_path, display_text, to_fs


@dataclass(frozen=True)
class MediaInfo:
    """What a media file holds, read from its container headers (and a first decoded frame)."""

    duration: float  # seconds
    fps: float       # video frames per second, 0 without video
    width: int
    height: int
    has_video: bool
    has_audio: bool


@dataclass(frozen=True)
class Frame:
    index: int        # index among the *sampled* frames
    t: float          # presentation time in seconds
    image: np.ndarray  # H x W x 3 uint8 RGB (or H x W uint8 when grey)


def open_container(path: Path | str) -> av.container.InputContainer:
    """Open a media file, turning every failure into a MediaError that names the file and why.

    ``path`` may be any form emonets.media.paths knows (a str, bytes, or the ``file://`` URI a WorkUnit
    carries for a non-UTF-8 name); messages show it escaped, so they are valid text to store.
    """
    fs = Path(to_fs(path))
    shown = display_path(fs)
    if not fs.exists():
        raise MediaError(f"{shown}: file does not exist")
    if fs.is_file() and fs.stat().st_size == 0:
        raise MediaError(f"{shown}: file is empty (0 bytes)")
    try:
        return av.open(str(fs))
    except (av.FFmpegError, OSError, UnicodeDecodeError) as err:
        raise MediaError(f"{shown}: not a readable media file ({display_text(str(err))})") from err


def probe(path: Path | str) -> MediaInfo:
    """Streams, duration and frame rate; decodes the first video frame to prove it is readable."""
    with open_container(path) as container:
        video = container.streams.video[0] if container.streams.video else None
        has_audio = bool(container.streams.audio)
        if video is None and not has_audio:
            raise MediaError(f"{display_path(path)}: no audio or video stream")
        duration = _duration(container)
        if video is None:
            return MediaInfo(duration, 0.0, 0, 0, False, has_audio)
        fps = float(video.average_rate or video.guessed_rate or 0.0)
        try:
            first = next(container.decode(video), None)
        except av.FFmpegError as err:
            reason = display_text(str(err))
            raise MediaError(f"{display_path(path)}: video stream cannot be decoded ({reason})") from err
        if first is None:
            raise MediaError(f"{display_path(path)}: video stream holds no decodable frame")
        return MediaInfo(duration, fps, first.width, first.height, True, has_audio)


def _duration(container: av.container.InputContainer) -> float:
    if container.duration is not None:
        return container.duration / av.time_base
    for stream in list(container.streams.video) + list(container.streams.audio):
        if stream.duration is not None and stream.time_base is not None:
            return float(stream.duration * stream.time_base)
    return 0.0


def declared_video_seconds(path: Path | str) -> float:
    """How long the video stream's index says it is (0 when it does not say).

    The video stream's own length, not the container's: a soundtrack longer than the picture is
    not a missing picture. Compared with what decodes, it tells a file cut short after an
    index written at its start (which opens and plays, to where the data stops).
    """
    with open_container(path) as container:
        if not container.streams.video:
            return 0.0
        stream = container.streams.video[0]
        if stream.duration is not None and stream.time_base is not None:
            return float(stream.duration * stream.time_base)
        return 0.0


def _upright(frame, image: np.ndarray) -> np.ndarray:
    """The picture as it is meant to be seen: phones store portrait video sideways, with a
    rotation in the stream's display matrix that players apply (PyAV reports it per frame)."""
    quarter_turns = int(round((getattr(frame, "rotation", 0) or 0) / 90)) % 4
    return np.rot90(image, quarter_turns) if quarter_turns else image


def iter_frames(
    path: Path | str,
    *,
    fps: float | None = None,
    gray: bool = False,
    max_frames: int | None = None,
) -> Iterator[Frame]:
    """Yield frames sampled at ``fps`` (every frame when None), one at a time.

    Memory stays bounded by one frame whatever the video's length. A frame is kept when its
    timestamp reaches the next sampling instant, so a 30 fps clip sampled at 10 fps keeps every
    third frame. Raises MediaError for unreadable files and NoVideoError without a video stream.
    """
    container = open_container(path)
    try:
        if not container.streams.video:
            raise NoVideoError(f"{display_path(path)}: no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        step = 1.0 / fps if fps else 0.0
        next_t = 0.0
        kept = 0
        fmt = "gray" if gray else "rgb24"
        try:
            for raw_index, frame in enumerate(container.decode(stream)):
                t = float(frame.time) if frame.time is not None else raw_index / float(stream.average_rate or 25)
                if step and t + 1e-6 < next_t:
                    continue
                # A contiguous copy: PyAV hands out row-padded views for some widths, and dlib
                # reads raw buffers without strides (it finds no face on such a view).
                yield Frame(kept, t, np.ascontiguousarray(_upright(frame, frame.to_ndarray(format=fmt))))
                kept += 1
                if step:
                    next_t = max(next_t + step, t + step * 0.5)
                if max_frames is not None and kept >= max_frames:
                    return
        except av.FFmpegError as err:
            if kept == 0:
                raise MediaError(f"{display_path(path)}: video cannot be decoded ({display_text(str(err))})") from err
            # A truncated tail: keep what decoded, as players do.
            return
        if kept == 0:
            raise MediaError(f"{display_path(path)}: video stream holds no decodable frame")
    finally:
        container.close()
