"""EDSR: Lim et al., "Enhanced Deep Residual Networks for Single Image Super-Resolution", CVPRW 2017."""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from torch import Tensor, nn

from pipeline.models.base import check_positive, check_scale, is_power_of_two
from pipeline.models.registry import register_model

DIV2K_RGB_MEAN = (0.4488, 0.4371, 0.4040)


class ResBlock(nn.Module):
    """EDSR residual block without batch norm: ``x + res_scale * conv(ReLU(conv(x)))``."""

    def __init__(self, n_feats: int, res_scale: float):
        super().__init__()
        self.res_scale = res_scale
        self.body = nn.Sequential(
            nn.Conv2d(n_feats, n_feats, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(n_feats, n_feats, 3, padding=1),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.res_scale * self.body(x)


class PixelShuffleUpsampler(nn.Sequential):
    """Sub-pixel upsampler: one ``Conv(3, n * r^2) + PixelShuffle(r)`` for r = 3, a cascade of x2 for powers of two."""

    def __init__(self, n_feats: int, scale: int):
        factors = [3] if scale == 3 else [2] * int(math.log2(scale))
        layers: list[nn.Module] = []
        for factor in factors:
            layers += [nn.Conv2d(n_feats, n_feats * factor**2, 3, padding=1), nn.PixelShuffle(factor)]
        super().__init__(*layers)


class EDSRSkeleton(nn.Module):
    """EDSR's skeleton, which RCAN shares: ``f0 = conv(LR - mean)``, ``f = f0 + conv(body(f0))``,
    ``features = Up(f)``, where ``body`` holds the family's ``blocks`` (EDSR's docstring says why the mean
    is a buffer and where the tail convolution went). Modules are made in the order the state dict names
    them (``extract``, ``body``, ``upsample``): seeded networks start from the weights they always had.
    """

    def __init__(self, scale: int, n_feats: int, blocks: Iterable[nn.Module]):
        super().__init__()
        self.scale = scale
        self.feature_channels = n_feats
        self.register_buffer("rgb_mean", torch.tensor(DIV2K_RGB_MEAN).view(1, 3, 1, 1), persistent=False)
        self.extract = nn.Conv2d(3, n_feats, 3, padding=1)
        self.body = nn.Sequential(*blocks, nn.Conv2d(n_feats, n_feats, 3, padding=1))
        self.upsample = PixelShuffleUpsampler(n_feats, scale)

    def forward(self, lr: Tensor) -> Tensor:
        shallow = self.extract(lr - self.rgb_mean)
        return self.upsample(shallow + self.body(shallow))


@register_model("edsr")
class EDSR(EDSRSkeleton):
    """Post-upsampling EDSR: ``f0 = conv(LR - mean)``, ``f = f0 + conv(ResBlocks(f0))``, ``features = Up(f)``.

    ``n_blocks`` residual blocks of ``n_feats`` maps scaled by ``res_scale`` (defaults: the
    EDSR baseline, 16 x 64, res_scale 1; the full EDSR is 32 x 256 with res_scale 0.1). The
    upsampler is pixel shuffle (x2, x3, x4 and x8 by cascading x2). The input mean-shift
    subtracts the DIV2K RGB mean (a fixed buffer, not a parameter); the paper's tail convolution
    to RGB is the objective's head, whose bias takes the role of adding the mean back.

    Options:
        n_blocks: residual blocks.
        n_feats: maps per convolution.
        res_scale: factor on each block's residual.
    """

    def __init__(self, scale: int, n_blocks: int = 16, n_feats: int = 64, res_scale: float = 1.0):
        scale = check_scale(scale, "3 or a power of two (2, 4, 8)", lambda s: s == 3 or is_power_of_two(s))
        check_positive(n_blocks=n_blocks, n_feats=n_feats)
        if not res_scale > 0:
            raise ValueError(f"'res_scale' must be positive (got {res_scale!r})")
        super().__init__(scale, n_feats, (ResBlock(n_feats, res_scale) for _ in range(n_blocks)))
