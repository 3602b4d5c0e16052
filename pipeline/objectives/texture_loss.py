"""Gram-matrix texture (style) loss on VGG features (Gatys, Ecker & Bethge 2016; patch-wise as in
EnhanceNet, Sajjadi, Schoelkopf & Hirsch, ICCV 2017)."""

from __future__ import annotations

import re

import torch
from torch import Tensor

from pipeline.errors import PipelineError
from pipeline.objectives.base import LossTerm
from pipeline.objectives.pretrained import Arch, VGGFeatures
from pipeline.objectives.registry import register_term


def layer_stride(name: str) -> int:
    """Pixels per feature position of a VGG layer: ``conv3_1 -> 4``, ``pool3 -> 8``."""
    block = int(re.findall(r"\d+", name)[0])
    return 2 ** (block if name.startswith("pool") else block - 1)


def patch_gram(features: Tensor, window: int | None) -> Tensor:
    """``G = F F^T / (C N)`` of each non-overlapping ``window x window`` patch (the whole map when None).

    ``features``: ``[B, C, H, W]``; returns ``[B, P, C, C]`` for ``P`` patches; the bottom and right
    rows that do not fill a patch are left out.
    """
    batch, channels, height, width = features.shape
    if window is None:
        flat = features.reshape(batch, 1, channels, height * width)
    else:
        rows, cols = height // window, width // window
        cropped = features[..., : rows * window, : cols * window]
        patches = cropped.reshape(batch, channels, rows, window, cols, window).permute(0, 2, 4, 1, 3, 5)
        flat = patches.reshape(batch, rows * cols, channels, window * window)
    return flat @ flat.transpose(-1, -2) / (channels * flat.shape[-1])


@register_term("texture")
class TextureLoss(LossTerm):
    """``sum_l w_l * mean (G(phi_l(SR)) - G(phi_l(HR)))^2`` with ``G`` the Gram matrix of VGG layer ``l``.

    ``patch_size`` (pixels of the image) makes the Gram matrices local, EnhanceNet's 16x16 patches,
    so textures must match region by region rather than over the whole image (Gatys: None). At a
    layer of stride ``s`` a patch covers ``patch_size / s`` feature positions. Default layers
    ``relu1_1, relu2_1, relu3_1`` are EnhanceNet's conv1.1, conv2.1, conv3.1 (TensorFlow VGG layers
    include the ReLU). Gram matrices are divided by ``C N`` so layers of any size weigh alike; tune
    the weights for that normalisation (EnhanceNet's tiny weights are for unnormalised matrices).

    Options:
        layers: VGG layer name -> weight ``w_l``; None is ``{relu1_1: 1, relu2_1: 1, relu3_1: 1}``.
        patch_size: side in pixels of the square patches whose Gram matrices are compared; None is the
            whole image (Gatys).
        arch, weights, normalize: as for ``perceptual``.
    """

    def __init__(self, layers: dict[str, float] | None = None, patch_size: int | None = 16,
                 arch: Arch = "vgg19", weights: str | None = None, normalize: bool = True):
        super().__init__()
        self.layer_weights = {name: float(w) for name, w in (layers or {"relu1_1": 1.0, "relu2_1": 1.0, "relu3_1": 1.0}).items()}
        self.features = VGGFeatures(self.layer_weights, arch, weights, normalize, setting="loss.terms.texture.weights")
        self.patch_size = patch_size
        self.windows = {name: self._window(name, patch_size) for name in self.layer_weights}

    @staticmethod
    def _window(name: str, patch_size: int | None) -> int | None:
        if patch_size is None:
            return None
        window = patch_size // layer_stride(name)
        if window < 1:
            raise ValueError(
                f"patch_size {patch_size} is smaller than the stride of layer '{name}'; raise it or pick a shallower layer"
            )
        return window

    def forward(self, sr: Tensor, hr: Tensor) -> Tensor:
        if self.patch_size is not None and min(sr.shape[-2:]) < self.patch_size:
            raise PipelineError(
                f"the texture loss cannot cut {tuple(sr.shape[-2:])} images into {self.patch_size}-pixel patches; "
                "lower loss.terms.texture.patch_size or raise train.patch_size"
            )
        sr_features = self.features(sr)
        with torch.no_grad():
            hr_features = self.features(hr)
        total = sr.new_zeros((), dtype=torch.float32)
        for name, w in self.layer_weights.items():
            window = self.windows[name]
            difference = patch_gram(sr_features[name].float(), window) - patch_gram(hr_features[name].float(), window)
            total = total + w * difference.square().mean()
        return total
