"""Building blocks shared by the network families: argument checks and in-network upsampling."""

from __future__ import annotations

from typing import Callable

import torch.nn.functional as F
from torch import Tensor


def check_scale(scale: int, allowed: str = "an integer >= 2", supported: Callable[[int], bool] = lambda s: True) -> int:
    """Return ``scale`` if it is an integer >= 2 accepted by ``supported``; else ``ValueError`` naming ``allowed``."""
    if isinstance(scale, bool) or not isinstance(scale, int) or scale < 2 or not supported(scale):
        raise ValueError(f"scale {scale!r} is not supported; use {allowed}")
    return scale


def check_positive(**values: int) -> None:
    """``ValueError`` for the first argument that is not a positive integer."""
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"'{name}' must be a positive integer (got {value!r})")


def is_power_of_two(scale: int) -> bool:
    return scale & (scale - 1) == 0


def bicubic_upsample(image: Tensor, scale: int) -> Tensor:
    """Torch bicubic interpolation by an integer factor (``align_corners=False``, cubic a = -0.75).

    This is the in-network upsampler of the pre-upsampling families. It is not MATLAB's
    ``imresize`` (a = -0.5): the data pipeline's MATLAB-exact bicubic is for degradation only.
    """
    return F.interpolate(image, scale_factor=scale, mode="bicubic", align_corners=False)
