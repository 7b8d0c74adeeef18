"""Decode a media file's audio track to mono float32 at a target rate with PyAV."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np

from emonets.errors import MediaError, NoAudioError
from emonets.media.video import open_container


def load_audio(path: Path | str, *, sr: int = 16000, max_seconds: float | None = None) -> np.ndarray:
    """The first audio stream as a 1-D float32 array in [-1, 1] at ``sr`` Hz (mono mix-down).

    Raises NoAudioError when the file has no audio stream, MediaError when it cannot be decoded.
    """
    with open_container(path) as container:
        if not container.streams.audio:
            raise NoAudioError(f"{path}: no audio stream")
        stream = container.streams.audio[0]
        resampler = av.AudioResampler(format="flt", layout="mono", rate=sr)
        chunks: list[np.ndarray] = []
        total = 0
        limit = int(max_seconds * sr) if max_seconds else None
        try:
            for frame in container.decode(stream):
                for out in resampler.resample(frame):
                    chunk = out.to_ndarray().reshape(-1)
                    chunks.append(chunk)
                    total += chunk.size
                if limit is not None and total >= limit:
                    break
            for out in resampler.resample(None):
                chunks.append(out.to_ndarray().reshape(-1))
        except av.FFmpegError as err:
            if not chunks:
                raise MediaError(f"{path}: audio cannot be decoded ({err})") from err
    samples = np.concatenate(chunks).astype(np.float32, copy=False) if chunks else np.zeros(0, np.float32)
    if limit is not None:
        samples = samples[:limit]
    if samples.size == 0:
        raise MediaError(f"{path}: audio stream holds no decodable samples")
    return samples
