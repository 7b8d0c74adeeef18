"""The frames of one demo clip: a portrait warped into an expression, talking, blinking and
moving, with colour and sensor noise."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from emonets.datasets.demo.faces import IOD_PX, portrait, warp_field
from emonets.datasets.demo.templates import template
from emonets.datasets.demo.voice import envelope_at

if TYPE_CHECKING:
    from emonets.datasets.demo.dataset import DemoConfig


def render_frames(emotion, rng, cfg: DemoConfig, identity: int, n: int, syllables, head_gain: float):
    """The clip's ``n`` frames (a lazy iterator); the jitter is drawn from ``rng`` now, in a fixed order."""
    from skimage.draw import polygon

    face = portrait(identity)
    disp = template(emotion)
    # Per-clip variation: overall strength, brow vs mouth balance, per-landmark noise.
    upper = ((np.arange(68) >= 17) & (np.arange(68) < 48))[:, None]
    gains = np.where(upper, rng.uniform(0.7, 1.25), rng.uniform(0.7, 1.25))
    disp = disp * gains * rng.uniform(0.75, 1.2) + (disp != 0) * rng.normal(0, 0.012, disp.shape)
    disp = disp * IOD_PX
    expr = warp_field(face, disp) if np.any(disp) else None
    t = np.arange(n) / cfg.fps
    onset, rise = rng.uniform(0.1, 0.35) * cfg.seconds, rng.uniform(0.25, 0.45) * cfg.seconds
    a = np.clip((t - onset) / rise, 0, 1)
    a = a * a * (3 - 2 * a)
    talk = envelope_at(syllables, t) * rng.uniform(0.6, 1.0)
    blink = np.zeros(n)
    for when in rng.uniform(0, cfg.seconds, rng.poisson(0.35 * cfg.seconds)):
        blink = np.maximum(blink, np.clip(1 - np.abs(t - when) / 0.1, 0, 1))
    # Head motion (per-class gain), zoom, placement; colour and sensor noise.
    amp = head_gain * rng.uniform(2.5, 5.0)
    fx, fy, fr = rng.uniform(0.3, 1.2, 3)
    ph = rng.uniform(0, 2 * np.pi, 3)
    tx, ty = amp * np.sin(2 * np.pi * fx * t + ph[0]), 0.6 * amp * np.sin(2 * np.pi * fy * t + ph[1])
    rot = np.deg2rad(head_gain * rng.uniform(1.0, 3.0)) * np.sin(2 * np.pi * fr * t + ph[2])
    zoom = rng.uniform(0.9, 1.07) * (1 + 0.02 * head_gain * np.sin(2 * np.pi * 0.4 * t + ph[0]))
    shift = rng.uniform(-12, 12, 2)
    gain, bias = rng.uniform(0.85, 1.12) * rng.uniform(0.95, 1.05, 3), rng.uniform(-10, 10)
    sigma = rng.uniform(1.5, 4.0)
    noise_seed = int(rng.integers(2**31))

    H, W = cfg.height, cfg.width
    out_c = np.array([W / 2, H / 2]) + shift
    src_c = face.points.mean(0)
    py, px = np.mgrid[0:H, 0:W].astype(np.float64)
    y0, y1, x0, x1 = face.region

    def frames():
        noise_rng = np.random.default_rng(noise_seed)
        for k in range(n):
            c, s = math.cos(rot[k]), math.sin(rot[k])
            dx, dy = px - out_c[0] - tx[k], py - out_c[1] - ty[k]
            ux = src_c[0] + (c * dx + s * dy) / zoom[k]
            uy = src_c[1] + (-s * dx + c * dy) / zoom[k]
            iy, ix = np.rint(uy).astype(int) - y0, np.rint(ux).astype(int) - x0
            inside = (iy >= 0) & (iy < y1 - y0) & (ix >= 0) & (ix < x1 - x0)
            field = blink[k] * face.blink + talk[k] * face.talk
            if expr is not None:
                field = field + a[k] * expr
            vx, vy = np.zeros_like(ux), np.zeros_like(uy)
            vx[inside] = field[iy[inside], ix[inside], 0]
            vy[inside] = field[iy[inside], ix[inside], 1]
            frame = _bilinear(face.image, ux + vx, uy + vy)
            # The open mouth: darken inside the moved inner-lip contour.
            lips = face.points[60:68] + a[k] * disp[60:68] + talk[k] * face.talk_disp[60:68]
            gap = (lips[6, 1] - lips[2, 1]) - (face.points[66, 1] - face.points[62, 1])
            if gap > 1.0:
                rel = lips - src_c
                ox = out_c[0] + tx[k] + zoom[k] * (c * rel[:, 0] - s * rel[:, 1])
                oy = out_c[1] + ty[k] + zoom[k] * (s * rel[:, 0] + c * rel[:, 1])
                rr, cc = polygon(oy, ox, shape=(H, W))
                alpha = min(0.7, (gap - 1.0) / 6.0)
                frame[rr, cc] = (1 - alpha) * frame[rr, cc] + alpha * np.array([60.0, 22.0, 25.0])
            frame = frame * gain + bias + noise_rng.normal(0, sigma, frame.shape)
            yield np.clip(np.rint(frame), 0, 255).astype(np.uint8)

    return frames()


def _bilinear(image: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Sample an H x W x C image at float coordinates (edge pixels repeat outside)."""
    h, w = image.shape[:2]
    x = np.clip(x, 0, w - 1.001)
    y = np.clip(y, 0, h - 1.001)
    x0, y0 = x.astype(np.intp), y.astype(np.intp)
    fx, fy = (x - x0)[..., None], (y - y0)[..., None]
    top = image[y0, x0] * (1 - fx) + image[y0, x0 + 1] * fx
    bottom = image[y0 + 1, x0] * (1 - fx) + image[y0 + 1, x0 + 1] * fx
    return top * (1 - fy) + bottom * fy
