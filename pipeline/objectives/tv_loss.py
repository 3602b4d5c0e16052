"""Total variation of the SR image (Rudin, Osher & Fatemi 1992), a smoothness regulariser."""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

from pipeline.objectives.base import LossTerm
from pipeline.objectives.registry import register_term


def safe_hypot(x: Tensor, y: Tensor) -> Tensor:
    """``sqrt(x^2 + y^2)`` whose gradient at ``x = y = 0`` is 0 instead of NaN."""
    squared = x.square() + y.square()
    positive = squared > 0
    return torch.where(positive, torch.where(positive, squared, 1.0).sqrt(), 0.0)


@register_term("tv")
class TotalVariationLoss(LossTerm):
    """Total variation of SR with forward differences ``dx = I[:, :, i, j+1] - I[:, :, i, j]``, ``dy`` likewise.

    anisotropic (default): ``mean |dx| + mean |dy|``;
    isotropic: ``mean sqrt(dx^2 + dy^2)`` on the ``(H-1) x (W-1)`` grid where both exist.
    HR is not used: TV is a prior on the output (Johnson et al. 2016 add it to their SR perceptual loss).

    Options:
        variant: ``anisotropic`` or ``isotropic`` (above).
    """

    def __init__(self, variant: Literal["anisotropic", "isotropic"] = "anisotropic"):
        super().__init__()
        if variant not in ("anisotropic", "isotropic"):
            raise ValueError(f"variant must be 'anisotropic' or 'isotropic' (got {variant!r})")
        self.variant = variant

    def forward(self, sr: Tensor, hr: Tensor) -> Tensor:
        dx = sr[..., :, 1:] - sr[..., :, :-1]
        dy = sr[..., 1:, :] - sr[..., :-1, :]
        if self.variant == "anisotropic":
            return dx.abs().mean() + dy.abs().mean()
        return safe_hypot(dx[..., :-1, :], dy[..., :, :-1]).mean()
