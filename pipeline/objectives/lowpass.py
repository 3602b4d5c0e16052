"""Low-pass filters that split an image into low and high frequencies (used by FCS).

``gaussian``: separable Gaussian blur (``sigma``, odd ``kernel_size``, reflect padding).
``bicubic``: bicubic downscale by ``factor`` (antialiased) then bicubic upscale to the input size.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def gaussian_kernel_1d(sigma: float, kernel_size: int) -> Tensor:
    """``g[i] = exp(-(i - c)^2 / (2 sigma^2))``, normalised to sum 1, ``c`` the centre tap."""
    positions = torch.arange(kernel_size, dtype=torch.float64) - (kernel_size - 1) / 2
    taps = torch.exp(-(positions**2) / (2 * sigma**2))
    return (taps / taps.sum()).float()


class LowPass(nn.Module):
    """``f(x)`` for ``x`` of shape ``[B, C, H, W]``; device follows ``.to()`` like any module."""

    def __init__(
        self,
        kind: Literal["gaussian", "bicubic"] = "gaussian",
        sigma: float = 1.5,
        kernel_size: int = 9,
        factor: int = 2,
    ):
        super().__init__()
        if kind not in ("gaussian", "bicubic"):
            raise ValueError(f"low-pass kind must be 'gaussian' or 'bicubic', got '{kind}'")
        if kind == "gaussian" and (sigma <= 0 or kernel_size < 3 or kernel_size % 2 == 0):
            raise ValueError(f"a Gaussian low-pass needs sigma > 0 and an odd kernel_size >= 3, got {sigma}, {kernel_size}")
        if kind == "bicubic" and factor < 2:
            raise ValueError(f"a bicubic low-pass needs factor >= 2, got {factor}")
        self.kind = kind
        self.factor = factor
        self.register_buffer("taps", gaussian_kernel_1d(sigma, kernel_size), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        """Filtered ``x`` in its own dtype; autocast is off, so targets keep full precision."""
        with torch.autocast(x.device.type, enabled=False):
            if self.kind == "bicubic":
                return self._bicubic(x)
            return self._gaussian(x)

    def _gaussian(self, x: Tensor) -> Tensor:
        channels = x.shape[1]
        size = self.taps.numel()
        taps = self.taps.to(x.dtype)
        pad = size // 2
        mode = "reflect" if min(x.shape[-2:]) > pad else "replicate"
        out = F.pad(x, (pad, pad, pad, pad), mode=mode)
        out = F.conv2d(out, taps.view(1, 1, 1, size).expand(channels, 1, 1, size), groups=channels)
        return F.conv2d(out, taps.view(1, 1, size, 1).expand(channels, 1, size, 1), groups=channels)

    def _bicubic(self, x: Tensor) -> Tensor:
        height, width = x.shape[-2:]
        small = (max(1, height // self.factor), max(1, width // self.factor))
        down = F.interpolate(x, size=small, mode="bicubic", align_corners=False, antialias=True)
        return F.interpolate(down, size=(height, width), mode="bicubic", align_corners=False)
