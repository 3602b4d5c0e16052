"""RCAN: Zhang et al., "Image Super-Resolution Using Very Deep Residual Channel Attention Networks", ECCV 2018."""

from __future__ import annotations

from torch import Tensor, nn

from pipeline.models.base import check_positive, check_scale, is_power_of_two
from pipeline.models.edsr_arch import EDSRSkeleton
from pipeline.models.registry import register_model


class ChannelAttention(nn.Module):
    """Squeeze-and-excitation: ``x * sigmoid(W_up ReLU(W_down avgpool(x)))``, ``W_down`` reducing C to C / r."""

    def __init__(self, n_feats: int, reduction: int):
        super().__init__()
        self.weights = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(n_feats, max(1, n_feats // reduction), 1),
            nn.ReLU(inplace=True),
            nn.Conv2d(max(1, n_feats // reduction), n_feats, 1),
            nn.Sigmoid(),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x * self.weights(x)


class ResidualChannelAttentionBlock(nn.Module):
    """RCAB: ``x + CA(conv(ReLU(conv(x))))``."""

    def __init__(self, n_feats: int, reduction: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(n_feats, n_feats, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(n_feats, n_feats, 3, padding=1),
            ChannelAttention(n_feats, reduction),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


class ResidualGroup(nn.Sequential):
    """``n_blocks`` RCABs and a conv, with a short skip connection: ``x + conv(RCABs(x))``."""

    def __init__(self, n_feats: int, n_blocks: int, reduction: int):
        super().__init__(*(ResidualChannelAttentionBlock(n_feats, reduction) for _ in range(n_blocks)),
                         nn.Conv2d(n_feats, n_feats, 3, padding=1))

    def forward(self, x: Tensor) -> Tensor:
        return x + super().forward(x)


@register_model("rcan")
class RCAN(EDSRSkeleton):
    """Residual in residual: ``f0 = conv(LR - mean)``, ``f = f0 + conv(Groups(f0))``, ``features = Up(f)``.

    Defaults are the paper's: 10 residual groups of 20 RCABs, 64 maps, channel reduction 16, a
    pixel-shuffle upsampler (x2, x3, x4 and x8 by cascading x2). The skeleton is EDSR's
    (``EDSRSkeleton``): the DIV2K mean is a fixed buffer and the paper's tail convolution to RGB is the
    objective's head.

    Options:
        n_groups: residual groups.
        n_blocks: residual channel attention blocks per group.
        n_feats: maps per convolution.
        reduction: channel reduction inside the attention (n_feats / reduction hidden maps).
    """

    def __init__(self, scale: int, n_groups: int = 10, n_blocks: int = 20, n_feats: int = 64, reduction: int = 16):
        scale = check_scale(scale, "3 or a power of two (2, 4, 8)", lambda s: s == 3 or is_power_of_two(s))
        check_positive(n_groups=n_groups, n_blocks=n_blocks, n_feats=n_feats, reduction=reduction)
        super().__init__(scale, n_feats, (ResidualGroup(n_feats, n_blocks, reduction) for _ in range(n_groups)))
