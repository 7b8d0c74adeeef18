"""Render and encode one composed clip: the FER face moving over a soft background, with the
RAVDESS utterance as its sound track.

Everything that touches pixels and encoders is here, including the (optionally parallel) loop
that encodes a list of planned clips.
"""

from __future__ import annotations

import math
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from emonets.datasets.compose.plan import ClipPlan, ComposeConfig
from emonets.errors import ClipError


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
    from emonets.media.audio_io import load_audio
    from emonets.media.images import load_grey_image
    from emonets.media.writer import write_video

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


def encode_jobs(jobs: list, workers: int) -> Iterator[tuple]:
    """Encode in this process, or in ``workers`` processes (results in plan order either way)."""
    if workers <= 1 or len(jobs) <= 1:
        yield from map(_encode_job, jobs)
        return
    with ProcessPoolExecutor(workers) as pool:
        yield from pool.map(_encode_job, jobs)
