"""FixedSum: map values in [0, 1] to weights in [0, 1] whose mean is exactly ``k``.

Mellatshahi & Kasaei, "Trainable Loss Weights in Super-Resolution", arXiv:2301.10575, Sec. 3.
"""

from __future__ import annotations

import torch
from torch import Tensor


def fixed_sum(x: Tensor, k: float) -> Tensor:
    """Rescale ``x`` (``[B, C, H, W]``, values in [0, 1]) so each (image, channel) mean is ``k``.

    With ``N = H * W`` pixels and ``S = sum(x)`` per (image, channel):
    ``alpha = relu((kN - S) / (N - S))`` lifts every value towards 1 when the sum is too small,
    ``beta = relu((S - kN) / S)`` shrinks every value towards 0 when it is too large, and
    ``w = x + alpha (1 - x) - beta x``. At most one of alpha, beta is non-zero, both are in
    [0, 1], so ``w`` stays in [0, 1] and ``sum(w) = kN``. The denominators vanish only where
    the matching relu is zero (``S = 0`` or ``S = N``); they are replaced by 1 there, which
    keeps values and gradients finite. Computed in at least float32 (half-precision sums over a
    patch are too coarse).
    """
    if not 0.0 < k < 1.0:
        raise ValueError(f"FixedSum needs 0 < k < 1, got {k}")
    x = x.to(torch.promote_types(x.dtype, torch.float32))
    count = x.shape[-2] * x.shape[-1]
    total = x.sum(dim=(-2, -1), keepdim=True)
    target = k * count
    room = count - total
    alpha = torch.relu((target - total) / torch.where(room > 0, room, torch.ones_like(room)))
    beta = torch.relu((total - target) / torch.where(total > 0, total, torch.ones_like(total)))
    return (x + alpha * (1 - x) - beta * x).clamp(0.0, 1.0)
