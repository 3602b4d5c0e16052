"""VGG perceptual (feature) loss (Johnson, Alahi & Fei-Fei 2016; SRGAN, Ledig et al. 2017; ESRGAN, Wang et al. 2018)."""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor
from torch.nn import functional as F

from pipeline.objectives.base import LossTerm
from pipeline.objectives.pretrained import Arch, VGGFeatures
from pipeline.objectives.registry import register_term


@register_term("perceptual")
class PerceptualLoss(LossTerm):
    """``sum_l w_l * mean d(phi_l(SR), phi_l(HR))`` over VGG layers ``l`` with weights ``w_l``.

    ``layers`` maps layer names to weights: ``convB_I`` is the I-th convolution of block B before
    its ReLU, ``reluB_I`` after it, ``poolB`` the block's max-pooling. The default ``{conv5_4: 1.0}``
    with ``criterion: l1`` is ESRGAN's choice (features before activation keep more information);
    SRGAN's VGG54 is ``{relu5_4: 1.0}`` with ``l2``. ``d`` is L1 or squared L2 (``l2``); images are
    ImageNet-normalised first when ``normalize``. ``weights``: the VGG file (see ``load_vgg``).

    Options:
        layers: VGG layer name -> weight ``w_l``; None is ``{conv5_4: 1.0}``.
        criterion: ``d``: ``l1`` (mean absolute) or ``l2`` (mean squared).
        arch: ``vgg19`` or ``vgg16``.
        weights: a local VGG state dict file; None is torchvision's ImageNet weights (docs/losses.md).
        normalize: ImageNet mean/std normalisation of the inputs.
    """

    def __init__(self, layers: dict[str, float] | None = None, criterion: Literal["l1", "l2"] = "l1",
                 arch: Arch = "vgg19", weights: str | None = None, normalize: bool = True):
        super().__init__()
        if criterion not in ("l1", "l2"):
            raise ValueError(f"criterion must be 'l1' or 'l2' (got {criterion!r})")
        self.layer_weights = {name: float(w) for name, w in (layers or {"conv5_4": 1.0}).items()}
        self.distance = F.l1_loss if criterion == "l1" else F.mse_loss
        self.features = VGGFeatures(self.layer_weights, arch, weights, normalize,
                                    setting="loss.terms.perceptual.weights")

    def forward(self, sr: Tensor, hr: Tensor) -> Tensor:
        sr_features = self.features(sr)
        with torch.no_grad():
            hr_features = self.features(hr)
        return sum(w * self.distance(sr_features[name], hr_features[name]) for name, w in self.layer_weights.items())
