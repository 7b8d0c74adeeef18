"""The synchrony autoencoder of Konda, Memisevic and Michalski (its training, with Lightning, is in
:mod:`emonets.specialists.motion.training`, loaded only when a model is trained).

A block x (contrast-normalised, PCA-whitened, d values) is encoded by filter responses
f = Wᵀx and hidden "energy" units h = sigmoid(f² + b): a unit fires when its filter's parts
across the block's frames respond in synchrony, i.e. when the block moves the way the filter
does, whatever its sign or phase. The reconstruction is tied: r = W (h ⊙ f) + c. Training is
denoising (a fraction of inputs zeroed) with a mean squared reconstruction error; since the
inputs are whitened, the error of reconstructing nothing (r = 0) is about 1, so losses read
as the fraction of variance left unexplained.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn


class SynchronyAE(nn.Module):
    """(B, d) whitened blocks -> reconstruction (B, d) and codes (B, n_hidden) in (0, 1)."""

    def __init__(self, n_in: int, n_hidden: int = 300, *, init_scale: float = 1.0):
        super().__init__()
        # Unit-variance responses on whitened input at the start (draws from torch's global RNG).
        self.W = nn.Parameter(torch.randn(n_in, n_hidden) * (init_scale / np.sqrt(n_in)))
        self.b_hidden = nn.Parameter(torch.zeros(n_hidden))
        self.b_out = nn.Parameter(torch.zeros(n_in))

    def responses(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = x @ self.W
        return f, torch.sigmoid(f * f + self.b_hidden)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.responses(x)[1]

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f, h = self.responses(x)
        return (h * f) @ self.W.T + self.b_out, h


@dataclass
class TrainResult:
    net: SynchronyAE                  # on the CPU, float32, eval mode, best checkpoint's weights
    epoch_seconds: list[float] = field(default_factory=list)
    history: list[dict] = field(default_factory=list)
    initial_loss: float = float("nan")  # clean reconstruction error before training
    final_loss: float = float("nan")    # clean reconstruction error after training (train blocks)
    accelerator: str = "cpu"
    precision: str = "32-true"


def reconstruction_error(net: SynchronyAE, x: np.ndarray, *, batch: int = 8192) -> float:
    """Mean squared error of reconstructing clean whitened rows (CPU, float32)."""
    was_training = net.training
    net.eval()
    total, n = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(x), batch):
            xb = torch.as_tensor(x[start : start + batch], dtype=torch.float32)
            recon, _ = net(xb)
            total += float(((recon - xb) ** 2).sum())
            n += xb.numel()
    net.train(was_training)
    return total / max(n, 1)


def encode(net: SynchronyAE, x: np.ndarray, *, batch: int = 8192) -> np.ndarray:
    """(n, n_hidden) float32 codes of whitened rows, computed on the CPU in float32 (reproducible)."""
    net = net.eval()
    out = []
    with torch.no_grad():
        for start in range(0, len(x), batch):
            out.append(net.encode(torch.as_tensor(x[start : start + batch], dtype=torch.float32)).numpy())
    width = net.W.shape[1]
    return np.concatenate(out) if out else np.zeros((0, width), np.float32)


def __getattr__(name: str):
    """``train_autoencoder`` / ``SynchronyAEModule`` from the training module, imported on first use."""
    if name in ("train_autoencoder", "SynchronyAEModule"):
        from emonets.specialists.motion import training

        return getattr(training, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
