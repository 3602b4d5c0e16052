"""Focal frequency loss (Jiang, Dai, Wu & Loy, ICCV 2021, "Focal Frequency Loss for Image
Reconstruction and Synthesis")."""

from __future__ import annotations

import torch
from torch import Tensor

from pipeline.errors import PipelineError
from pipeline.objectives.base import LossTerm
from pipeline.objectives.registry import register_term


@register_term("ffl")
class FocalFrequencyLoss(LossTerm):
    """``mean(w * |F_sr - F_hr|^2)`` over images, patches, channels and frequencies.

    ``F`` is the orthonormal 2D DFT of each of the ``patch_factor x patch_factor`` patches of each
    channel (sides cropped to a multiple of ``patch_factor``). The spectrum weight
    ``w = |F_sr - F_hr|^alpha`` (``log(1 + .)`` of it when ``log_matrix``) is divided by its maximum
    over the frequencies of each patch and channel, so it lies in [0, 1] (0 where SR matches HR),
    and is detached, as in the paper: hard frequencies get the most weight, but the weight itself is
    not optimised. The DFT runs in float32 so the term works under mixed precision.

    Options:
        alpha: focusing exponent; 0 gives the plain spectrum distance, equal to the MSE (Parseval).
        patch_factor: cut the image into ``patch_factor x patch_factor`` patches before the DFT.
        log_matrix: log-compress the weight before normalising.
    """

    def __init__(self, alpha: float = 1.0, patch_factor: int = 1, log_matrix: bool = False):
        super().__init__()
        if alpha < 0:
            raise ValueError(f"alpha must be >= 0 (got {alpha})")
        if patch_factor < 1:
            raise ValueError(f"patch_factor must be an integer >= 1 (got {patch_factor})")
        self.alpha = float(alpha)
        self.patch_factor = int(patch_factor)
        self.log_matrix = bool(log_matrix)

    def spectrum(self, image: Tensor) -> Tensor:
        """Orthonormal DFT of each patch: ``[B, P, P, C, H/P, W/P]`` complex, ``P = patch_factor``."""
        batch, channels, height, width = image.shape
        factor = self.patch_factor
        patch_h, patch_w = height // factor, width // factor
        if patch_h == 0 or patch_w == 0:
            raise PipelineError(
                f"the ffl loss cannot cut {height}x{width} images into {factor}x{factor} patches; "
                "lower loss.terms.ffl.patch_factor or raise train.patch_size"
            )
        cropped = image[..., : patch_h * factor, : patch_w * factor].float()
        patches = cropped.reshape(batch, channels, factor, patch_h, factor, patch_w).permute(0, 2, 4, 1, 3, 5)
        return torch.fft.fft2(patches, norm="ortho")

    def spectrum_weight(self, squared_distance: Tensor) -> Tensor:
        """The focal weight ``w`` in [0, 1], from ``|F_sr - F_hr|^2``; carries no gradient."""
        with torch.no_grad():
            weight = squared_distance.sqrt().pow(self.alpha)
            if self.log_matrix:
                weight = torch.log1p(weight)
            peak = weight.amax(dim=(-2, -1), keepdim=True)
            return torch.where(peak > 0, weight / peak.clamp_min(torch.finfo(weight.dtype).tiny), 0.0).clamp(0.0, 1.0)

    def forward(self, sr: Tensor, hr: Tensor) -> Tensor:
        difference = self.spectrum(sr) - self.spectrum(hr)
        squared_distance = difference.real.square() + difference.imag.square()
        return (self.spectrum_weight(squared_distance) * squared_distance).mean()
