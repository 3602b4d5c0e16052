"""Pixel losses: mean over all elements of a function of the residual ``d = SR - HR``."""

from __future__ import annotations

import torch
from torch import Tensor
from torch.nn import functional as F

from pipeline.objectives.base import LossTerm
from pipeline.objectives.registry import register_term


@register_term("l1")
class L1Loss(LossTerm):
    """``mean |SR - HR|`` (EDSR, Lim et al. 2017, argue for it over L2 in SR)."""

    def forward(self, sr: Tensor, hr: Tensor) -> Tensor:
        return F.l1_loss(sr, hr)


@register_term("mse")
@register_term("l2")
class MSELoss(LossTerm):
    """``mean (SR - HR)^2``: the loss PSNR measures (SRCNN, Dong et al. 2014)."""

    def forward(self, sr: Tensor, hr: Tensor) -> Tensor:
        return F.mse_loss(sr, hr)


@register_term("charbonnier")
class CharbonnierLoss(LossTerm):
    """``mean sqrt((SR - HR)^2 + eps^2)``, a differentiable L1 (LapSRN, Lai et al. 2017, eps=1e-3).

    Its minimum is ``eps``, not 0, as in the paper; it tends to L1 as ``eps -> 0``.

    Options:
        eps: the ``eps`` inside the square root.
    """

    def __init__(self, eps: float = 1e-3):
        super().__init__()
        if eps <= 0:
            raise ValueError(f"eps must be > 0 (got {eps}); use the 'l1' term for eps = 0")
        self.eps = float(eps)

    def forward(self, sr: Tensor, hr: Tensor) -> Tensor:
        return torch.sqrt((sr - hr).square() + self.eps**2).mean()


@register_term("huber")
@register_term("smooth_l1")
class HuberLoss(LossTerm):
    """``mean h(SR - HR)``, ``h(d) = d^2 / 2`` if ``|d| < delta`` else ``delta (|d| - delta / 2)`` (Huber 1964).

    ``smooth_l1`` is the same term; with the default ``delta = 1`` it equals PyTorch's SmoothL1Loss.

    Options:
        delta: where ``h`` turns from quadratic to linear.
    """

    def __init__(self, delta: float = 1.0):
        super().__init__()
        if delta <= 0:
            raise ValueError(f"delta must be > 0 (got {delta})")
        self.delta = float(delta)

    def forward(self, sr: Tensor, hr: Tensor) -> Tensor:
        return F.huber_loss(sr, hr, delta=self.delta)
