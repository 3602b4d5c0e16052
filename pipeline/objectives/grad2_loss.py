"""Second-order gradient loss (Lin, Zhang & Yang 2023, "A pluggable single-image super-resolution
algorithm based on second-order gradient loss", BenchCouncil Trans. 3(4) 100148)."""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor
from torch.nn import functional as F

from pipeline.errors import PipelineError
from pipeline.objectives.base import LossTerm
from pipeline.objectives.registry import register_term
from pipeline.objectives.tv_loss import safe_hypot

Operator = Literal["hessian", "laplacian", "grad_magnitude_twice"]

_SECOND_DIFFERENCE = [[0.0, 0.0, 0.0], [1.0, -2.0, 1.0], [0.0, 0.0, 0.0]]
_KERNELS: dict[str, list[list[list[float]]]] = {
    "hessian": [
        _SECOND_DIFFERENCE,
        [list(row) for row in zip(*_SECOND_DIFFERENCE)],
        [[0.25, 0.0, -0.25], [0.0, 0.0, 0.0], [-0.25, 0.0, 0.25]],
    ],
    "laplacian": [[[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]]],
    "grad_magnitude_twice": [
        [[0.0, 0.0, 0.0], [-0.5, 0.0, 0.5], [0.0, 0.0, 0.0]],
        [[0.0, -0.5, 0.0], [0.0, 0.0, 0.0], [0.0, 0.5, 0.0]],
    ],
}


@register_term("grad2")
class SecondOrderGradientLoss(LossTerm):
    """``mean d(G(SR), G(HR))`` with ``d`` = L1 or squared L2 and ``G`` a second-order operator per channel:

    - ``hessian`` (default): the maps ``I_xx, I_yy, I_xy`` from central differences,
      ``I_xx = I(x+1) - 2 I(x) + I(x-1)``, ``I_xy = (I(x+1,y+1) - I(x+1,y-1) - I(x-1,y+1) + I(x-1,y-1)) / 4``;
    - ``laplacian``: ``I_xx + I_yy`` (one 5-point kernel);
    - ``grad_magnitude_twice``: ``M(M(I))`` with ``M(I) = sqrt(I_x^2 + I_y^2)``, central differences.

    Kernels are applied on the valid region only (no padding), so every operator maps an affine
    ramp ``a x + b y + c`` to exactly 0 and borders add no artefacts. The paper adds the term to a
    pixel loss: ``terms: {l1: 1.0, grad2: 0.1}``.

    Options:
        operator: ``G``: ``hessian``, ``laplacian`` or ``grad_magnitude_twice`` (above).
        distance: ``d``: ``l1`` (mean absolute) or ``l2`` (mean squared).
    """

    def __init__(self, operator: Operator = "hessian", distance: Literal["l1", "l2"] = "l1"):
        super().__init__()
        if operator not in _KERNELS:
            raise ValueError(f"operator must be one of {', '.join(_KERNELS)} (got {operator!r})")
        if distance not in ("l1", "l2"):
            raise ValueError(f"distance must be 'l1' or 'l2' (got {distance!r})")
        self.operator = operator
        self.distance = distance
        self.register_buffer("kernels", torch.tensor(_KERNELS[operator]).unsqueeze(1), persistent=False)
        self.min_side = 5 if operator == "grad_magnitude_twice" else 3

    def _filter(self, image: Tensor) -> Tensor:
        """Each kernel on each channel, valid region: ``[B, C*K, H-2, W-2]``."""
        channels = image.shape[1]
        weight = self.kernels.to(image.dtype).repeat(channels, 1, 1, 1)
        return F.conv2d(image, weight, groups=channels)

    def _magnitude(self, image: Tensor) -> Tensor:
        gradients = self._filter(image)
        return safe_hypot(gradients[:, 0::2], gradients[:, 1::2])

    def second_order(self, image: Tensor) -> Tensor:
        """The operator's second-order gradient maps of ``image`` ``[B, C, H, W]``."""
        if min(image.shape[-2:]) < self.min_side:
            raise PipelineError(
                f"the grad2 loss with operator '{self.operator}' needs images of at least "
                f"{self.min_side}x{self.min_side} pixels, got {tuple(image.shape[-2:])}; raise train.patch_size"
            )
        if self.operator == "grad_magnitude_twice":
            return self._magnitude(self._magnitude(image))
        return self._filter(image)

    def forward(self, sr: Tensor, hr: Tensor) -> Tensor:
        difference = self.second_order(sr) - self.second_order(hr)
        return difference.abs().mean() if self.distance == "l1" else difference.square().mean()
