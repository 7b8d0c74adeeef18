"""The face ConvNet backbone (plain nn.Module) and its batch augmentation."""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F


def _block(c_in: int, c_out: int, convs: int, dropout: float) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(convs):
        layers += [nn.Conv2d(c_in if i == 0 else c_out, c_out, 3, padding=1, bias=False),
                   nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]
    return nn.Sequential(*layers, nn.MaxPool2d(2), nn.Dropout2d(dropout))


class FaceNet(nn.Module):
    """VGG-style: blocks of 3x3 convs + BN + ReLU, then max-pool; global average pool, linear.

    ``convs[i]`` is the number of convs in block i: one in the high-resolution blocks keeps the
    CPU cost down, two in the low-resolution ones adds depth where it is cheap.
    Input (B, 1, H, W) grey faces scaled to [-1, 1]; output (B, n_classes) logits.
    """

    def __init__(self, *, widths: tuple[int, ...] = (32, 64, 128, 256), convs: tuple[int, ...] = (1, 1, 2, 2),
                 n_classes: int = 7, dropout: float = 0.1, head_dropout: float = 0.4):
        super().__init__()
        if len(convs) != len(widths):
            raise ValueError("widths and convs need one entry per block")
        blocks, c_in = [], 1
        for w, n in zip(widths, convs):
            blocks.append(_block(c_in, w, n, dropout))
            c_in = w
        self.features = nn.Sequential(*blocks)
        self.head = nn.Sequential(nn.Flatten(), nn.Dropout(head_dropout), nn.Linear(c_in, n_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)
        return self.head(F.adaptive_avg_pool2d(x, 1))


def to_input(images: torch.Tensor) -> torch.Tensor:
    """(B, H, W) uint8 -> (B, 1, H, W) float in [-1, 1]."""
    return images.unsqueeze(1).float().div_(127.5).sub_(1.0)


def warp(x: torch.Tensor, *, angle: torch.Tensor, scale: torch.Tensor, sign: torch.Tensor,
         shift: torch.Tensor) -> torch.Tensor:
    """One affine warp per face: rotate by ``angle`` (radians), zoom by ``scale``, mirror where
    ``sign`` is -1, translate by ``shift`` (B, 2) in grid units (2 = the full width)."""
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.zeros(x.shape[0], 2, 3, device=x.device)
    theta[:, 0, 0], theta[:, 0, 1] = cos * sign, -sin
    theta[:, 1, 0], theta[:, 1, 1] = sin * sign, cos
    theta[:, :, 2] = shift
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def augment(x: torch.Tensor, *, max_shift: float = 0.1, max_rotate: float = 12.0, max_scale: float = 0.12,
            flip: bool = True, erase: float = 0.25, generator: torch.Generator | None = None) -> torch.Tensor:
    """Random flip, shift, rotation, scale (one affine warp) and random erasing, on a batch."""
    b = x.shape[0]
    dev = x.device

    def rand(*shape):
        return torch.rand(*shape, device=dev, generator=generator)

    angle = (rand(b) * 2 - 1) * math.radians(max_rotate)
    scale = 1 + (rand(b) * 2 - 1) * max_scale
    sign = torch.where(rand(b) < 0.5, -1.0, 1.0) if flip else torch.ones(b, device=dev)
    out = warp(x, angle=angle, scale=scale, sign=sign, shift=(rand(b, 2) * 2 - 1) * max_shift * 2)
    if erase > 0:
        h, w = x.shape[2:]
        hit = rand(b) < erase
        eh = (rand(b) * 0.3 + 0.1) * h
        ew = (rand(b) * 0.3 + 0.1) * w
        cy, cx = rand(b) * h, rand(b) * w
        yy = torch.arange(h, device=dev).view(1, h, 1)
        xx = torch.arange(w, device=dev).view(1, 1, w)
        box = ((yy - cy.view(b, 1, 1)).abs() < eh.view(b, 1, 1) / 2) & ((xx - cx.view(b, 1, 1)).abs() < ew.view(b, 1, 1) / 2)
        out = out.masked_fill((box & hit.view(b, 1, 1)).unsqueeze(1), 0.0)
    return out


# Test-time views as (dx, dy, scale, degrees): shifts are fractions of the face's width; every
# view is also taken mirrored. "affine" mirrors the training augmentation at small, fixed sizes.
_SHIFT = 1 / 24  # 2 pixels of a 48-pixel face
TTA_VIEWS: dict[str, tuple[tuple[float, float, float, float], ...]] = {
    "mirror": ((0.0, 0.0, 1.0, 0.0),),
    "affine": ((0.0, 0.0, 1.0, 0.0), (-_SHIFT, 0.0, 1.0, 0.0), (_SHIFT, 0.0, 1.0, 0.0), (0.0, -_SHIFT, 1.0, 0.0),
               (0.0, _SHIFT, 1.0, 0.0), (0.0, 0.0, 0.92, 0.0), (0.0, 0.0, 1.08, 0.0), (0.0, 0.0, 1.0, -6.0),
               (0.0, 0.0, 1.0, 6.0)),
}


def tta_views(x: torch.Tensor, views: str = "mirror"):
    """Yield the test-time views of a (B, 1, H, W) batch: each warp of ``TTA_VIEWS[views]``, plain
    and mirrored. Averaging a net's outputs over them evens out small misalignments of the face."""
    if views not in TTA_VIEWS:
        raise ValueError(f"unknown test-time views {views!r}; known: {sorted(TTA_VIEWS)}")
    b = x.shape[0]
    for dx, dy, scale, degrees in TTA_VIEWS[views]:
        for mirrored in (False, True):
            if (dx, dy, scale, degrees) == (0.0, 0.0, 1.0, 0.0):
                yield x.flip(-1) if mirrored else x
                continue
            yield warp(x, angle=torch.full((b,), math.radians(degrees), device=x.device),
                       scale=torch.full((b,), scale, device=x.device),
                       sign=torch.full((b,), -1.0 if mirrored else 1.0, device=x.device),
                       shift=torch.tensor([[2 * dx, 2 * dy]], device=x.device).expand(b, 2))
