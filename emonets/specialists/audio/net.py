"""The audio specialist's network: a frame MLP over context windows, pooled over time per class.

The MLP sees ``2·context + 1`` stacked neighbouring frames; it is written as a 1-D convolution
(kernel = window) followed by 1×1 convolutions, which is the same MLP applied at every frame
but runs in one call over a padded batch of whole clips.
"""

from __future__ import annotations

import torch
from torch import nn


class FrameMLP(nn.Module):
    """(B, D, T) normalised frames -> (B, n_classes, T') per-frame class scores (logits).

    T' = ceil(T / stride): the MLP is evaluated every ``stride`` frames.
    """

    def __init__(self, n_features: int, n_classes: int, *, hidden: tuple[int, ...] = (310, 310),
                 context: int = 5, dilation: int = 1, stride: int = 1, dropout: float = 0.5,
                 input_dropout: float = 0.1):
        super().__init__()
        widths = (*hidden, n_classes)
        layers: list[nn.Module] = [nn.Dropout(input_dropout)]
        in_ch = n_features
        for i, width in enumerate(widths):
            if i == 0:  # the context window and the frame stride live in the first layer only
                layers.append(nn.Conv1d(in_ch, width, 2 * context + 1, stride=stride, dilation=dilation,
                                        padding=context * dilation))
            else:
                layers.append(nn.Conv1d(in_ch, width, 1))
            if i < len(widths) - 1:
                layers += [nn.ReLU(), nn.Dropout(dropout)]
            in_ch = width
        self.net = nn.Sequential(*layers)
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def top_pool(scores: torch.Tensor, lengths: torch.Tensor, *, k: int | None = None, frac: float | None = None,
             weights: tuple[float, ...] | None = None) -> torch.Tensor:
    """Per class, a weighted mean of the highest frame scores: (B, C, T), lengths (B,) -> (B, C).

    Exactly one of: ``weights`` (fixed weights for the 1st, 2nd, ... highest; the paper's top-2 is
    (0.7, 0.3)), ``k`` (mean of the k highest) or ``frac`` (mean of the ceil(frac·length) highest).
    Frames at or past a clip's length are ignored; k is capped at the length.
    """
    b, _, t = scores.shape
    pos = torch.arange(t, device=scores.device)
    valid = pos[None, :] < lengths[:, None]  # (B, T)
    masked = scores.masked_fill(~valid[:, None, :], float("-inf"))
    ranked = masked.sort(dim=-1, descending=True).values  # padding sorts last
    if weights is not None:
        w = torch.zeros(b, t, device=scores.device, dtype=scores.dtype)
        n = min(len(weights), t)
        w[:, :n] = torch.tensor(weights[:n], device=scores.device, dtype=scores.dtype)
        w = w * valid  # clips shorter than len(weights): renormalise over what exists
    else:
        if (k is None) == (frac is None):
            raise ValueError("give exactly one of weights, k or frac")
        if k is not None:
            kk = torch.clamp(lengths, max=k)
        else:
            kk = torch.ceil(lengths.to(torch.float32) * frac).long()
        kk = torch.clamp(torch.minimum(kk, lengths), min=1)
        w = (pos[None, :] < kk[:, None]).to(scores.dtype)
    w = w / w.sum(dim=1, keepdim=True)
    ranked = torch.where(w[:, None, :] > 0, ranked, torch.zeros_like(ranked))
    return (ranked * w[:, None, :]).sum(dim=-1)
