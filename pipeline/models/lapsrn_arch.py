"""LapSRN: Lai et al., "Deep Laplacian Pyramid Networks for Fast and Accurate Super-Resolution", CVPR 2017."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from pipeline.models.base import check_positive, check_scale, is_power_of_two
from pipeline.models.registry import register_model

LEAKY_SLOPE = 0.2


def bilinear_kernel(size: int) -> Tensor:
    """``size x size`` bilinear interpolation kernel, the paper's initialisation of transposed convolutions."""
    centre = (size - 1) / 2
    factor = (size + 1) // 2
    ramp = 1 - (torch.arange(size, dtype=torch.float32) - centre).abs() / factor
    return ramp[:, None] * ramp[None, :]


class FeatureLevel(nn.Sequential):
    """One level of the feature-embedding branch: ``depth x (Conv 3x3 + LReLU)``, then ``ConvT 4x4 /2 + LReLU``."""

    def __init__(self, n_feats: int, depth: int):
        layers: list[nn.Module] = []
        for _ in range(depth):
            layers += [nn.Conv2d(n_feats, n_feats, 3, padding=1), nn.LeakyReLU(LEAKY_SLOPE, inplace=True)]
        layers += [
            nn.ConvTranspose2d(n_feats, n_feats, 4, stride=2, padding=1),
            nn.LeakyReLU(LEAKY_SLOPE, inplace=True),
        ]
        super().__init__(*layers)


@register_model("lapsrn")
class LapSRN(nn.Module):
    """Progressive LapSRN: ``log2(scale)`` levels, each upsampling features and image by 2.

    Feature branch: ``f_0 = LReLU(conv(LR))``, ``f_s = FeatureLevel_s(f_{s-1})``. Image branch:
    ``I_0 = LR``, ``I_s = ConvT_s(I_{s-1}) + conv_s(f_s)`` (the residual ``conv_s`` is the paper's
    reconstruction layer; ``ConvT_s`` is 4x4 / 2 initialised bilinear, filters channel by channel).
    At the last level the residual layer is the objective's head, so the features are
    ``concat(f_S, ConvT_S(I_{S-1}))`` with ``n_feats + 3`` channels (the image enters like VDSR's).
    The paper's deep supervision of the intermediate levels (a loss on every ``I_s``) is not
    included: only the final output is supervised. Convolutions use He initialisation. Defaults:
    64 maps, ``depth`` 10 convolutions per level (5 at x8, as in the paper).

    Options:
        n_feats: maps per convolution.
        depth: convolutions per level; None is 10 (5 at x8).
    """

    def __init__(self, scale: int, n_feats: int = 64, depth: int | None = None):
        super().__init__()
        self.scale = check_scale(scale, "a power of two (2, 4, 8)", is_power_of_two)
        depth = (5 if scale >= 8 else 10) if depth is None else depth
        check_positive(n_feats=n_feats, depth=depth)
        levels = int(math.log2(scale))
        self.feature_channels = n_feats + 3
        self.embed = nn.Sequential(nn.Conv2d(3, n_feats, 3, padding=1), nn.LeakyReLU(LEAKY_SLOPE, inplace=True))
        self.feature_levels = nn.ModuleList(FeatureLevel(n_feats, depth) for _ in range(levels))
        self.image_upsamplers = nn.ModuleList(nn.ConvTranspose2d(3, 3, 4, stride=2, padding=1) for _ in range(levels))
        self.residuals = nn.ModuleList(nn.Conv2d(n_feats, 3, 3, padding=1) for _ in range(levels - 1))
        self._initialise()

    def _initialise(self) -> None:
        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
                nn.init.kaiming_normal_(module.weight, a=LEAKY_SLOPE, nonlinearity="leaky_relu")
                nn.init.zeros_(module.bias)
        with torch.no_grad():
            for upsampler in self.image_upsamplers:
                upsampler.weight.zero_()
                for channel in range(3):
                    upsampler.weight[channel, channel] = bilinear_kernel(4)

    def forward(self, lr: Tensor) -> Tensor:
        features, image = self.embed(lr), lr
        for level, (feature_level, upsampler) in enumerate(zip(self.feature_levels, self.image_upsamplers)):
            features, image = feature_level(features), upsampler(image)
            if level < len(self.residuals):
                image = image + self.residuals[level](features)
        return torch.cat([features, image], dim=1)
