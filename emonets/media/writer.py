"""Write videos (H.264 + AAC in mp4) with PyAV: used by the composed benchmark, the demo data
and the tests' generated fixtures."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Iterable

import av
import numpy as np

from data_catalog.atomic import atomic_path


def write_video(
    path: Path | str,
    frames: Iterable[np.ndarray],
    *,
    fps: int = 25,
    audio: np.ndarray | None = None,
    sr: int = 16000,
    codec: str = "libx264",
    crf: int = 23,
    deterministic: bool = False,
) -> Path:
    """Encode RGB frames (H x W x 3 uint8, even H and W) and optional mono float audio.

    The file appears atomically: it is encoded to a temp file beside ``path`` and renamed in.
    ``deterministic`` encodes with one x264 thread and no mb-tree rate control, so equal input
    gives equal bytes (either alone is not enough).
    """
    path = Path(path)
    with atomic_path(path) as tmp:
        with av.open(str(tmp), mode="w", format=_format_for(path)) as out:
            vstream = None
            astream = None
            if audio is not None:
                astream = out.add_stream("aac", rate=sr)
                astream.layout = "mono"
            for frame in frames:
                if vstream is None:
                    h, w = frame.shape[:2]
                    vstream = out.add_stream(codec, rate=fps)
                    vstream.width, vstream.height = w - w % 2, h - h % 2
                    vstream.pix_fmt = "yuv420p"
                    if codec == "libx264":
                        vstream.options = {"crf": str(crf), "preset": "veryfast",
                                           **({"threads": "1", "x264-params": "mbtree=0"} if deterministic else {})}
                        if deterministic:
                            vstream.thread_count = 1
                frame = np.ascontiguousarray(frame[: vstream.height, : vstream.width])
                for packet in vstream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                    out.mux(packet)
            if vstream is not None:
                for packet in vstream.encode():
                    out.mux(packet)
            if astream is not None:
                _encode_audio(out, astream, np.asarray(audio, dtype=np.float32), sr)
    return path


def _encode_audio(out, astream, samples: np.ndarray, sr: int) -> None:
    chunk = 1024
    pts = 0
    for start in range(0, len(samples), chunk):
        piece = np.ascontiguousarray(samples[start : start + chunk].reshape(1, -1))
        frame = av.AudioFrame.from_ndarray(piece, format="flt", layout="mono")
        frame.sample_rate = sr
        frame.pts = pts
        frame.time_base = Fraction(1, sr)
        pts += piece.shape[1]
        for packet in astream.encode(frame):
            out.mux(packet)
    for packet in astream.encode(None):
        out.mux(packet)


def _format_for(path: Path) -> str:
    return {".mp4": "mp4", ".m4v": "mp4", ".mkv": "matroska", ".avi": "avi", ".mov": "mov"}.get(
        path.suffix.lower(), "mp4"
    )
