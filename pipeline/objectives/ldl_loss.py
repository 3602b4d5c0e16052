"""Locally discriminative learning (LDL) artefact loss (Liang, Zeng & Zhang, CVPR 2022, "Details or
Artifacts: A Locally Discriminative Learning Approach to Realistic Image Super-Resolution")."""

from __future__ import annotations

import torch
from torch import Tensor
from torch.nn import functional as F

from pipeline.errors import PipelineError
from pipeline.objectives.base import LossTerm
from pipeline.objectives.registry import register_term


def local_variance(image: Tensor, window: int) -> Tensor:
    """Unbiased variance of each ``window x window`` neighbourhood (reflect padding), same size as ``image``."""
    pad = window // 2
    padded = F.pad(image, (pad, pad, pad, pad), mode="reflect")
    patches = padded.unfold(2, window, 1).unfold(3, window, 1)
    return patches.flatten(-2).var(dim=-1)


def artifact_map(sr: Tensor, hr: Tensor, window: int = 7) -> Tensor:
    """``M = var(R)^(1/5) * var_window(R)`` with ``R = sum_c |HR - SR|``, shape ``[B, 1, H, W]``.

    ``var(R)`` is the variance of the whole residual of each image (patch-level weight, its 1/5 power
    as in the authors' code); ``var_window`` the local variance in a ``window x window`` neighbourhood.
    """
    residual = (hr - sr).abs().sum(dim=1, keepdim=True)
    global_weight = residual.var(dim=(1, 2, 3), keepdim=True).pow(0.2)
    return global_weight * local_variance(residual, window)


@register_term("ldl")
class LDLLoss(LossTerm):
    """``mean(M * |HR - SR|)`` with ``M = artifact_map(SR, HR)`` computed from the detached SR.

    The paper refines ``M`` with the EMA generator ``SR_ema``: ``M = 0`` where
    ``|HR - SR| < |HR - SR_ema|``. A term has no EMA model, so ``M`` comes from the current SR alone,
    which is the paper's map when the EMA equals the current weights. ``M`` is a fixed weight (no
    gradient through it): the derivative of ``var^(1/5)`` is infinite at a constant residual. The
    paper uses it with L1, a perceptual loss and a GAN: ``terms: {l1: 1.0, ldl: 1.0, ...}``.

    Options:
        window: side of the odd ``window x window`` neighbourhood of the local variance.
    """

    def __init__(self, window: int = 7):
        super().__init__()
        if window < 3 or window % 2 == 0:
            raise ValueError(f"window must be an odd integer >= 3 (got {window})")
        self.window = int(window)

    def forward(self, sr: Tensor, hr: Tensor) -> Tensor:
        if min(sr.shape[-2:]) <= self.window // 2:
            raise PipelineError(
                f"the ldl loss needs images larger than {self.window // 2} pixels a side for its "
                f"{self.window}x{self.window} window, got {tuple(sr.shape[-2:])}; raise train.patch_size"
            )
        with torch.no_grad():
            weight = artifact_map(sr.detach().float(), hr.float(), self.window)
        return (weight.to(sr.dtype) * (hr - sr).abs()).mean()
