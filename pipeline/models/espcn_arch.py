"""ESPCN: Shi et al., "Real-Time Single Image and Video Super-Resolution Using an Efficient Sub-Pixel
Convolutional Neural Network", CVPR 2016."""

from __future__ import annotations

from torch import Tensor, nn

from pipeline.models.base import check_positive, check_scale
from pipeline.models.registry import register_model


@register_model("espcn")
class ESPCN(nn.Module):
    """Post-upsampling ESPCN: two tanh layers in LR space, then the efficient sub-pixel convolution.

    ``f1 = tanh(W1 * LR + b1)`` (5x5, ``n1`` maps), ``f2 = tanh(W2 * f1 + b2)`` (3x3, ``n2`` maps),
    ``features = PS(W3 * f2 + b3)`` where ``W3`` (3x3) has ``out_feats * r^2`` filters and the
    periodic shuffling ``PS`` rearranges them into ``out_feats`` maps at ``r`` times the size.
    In the paper ``PS`` yields the image itself; here it yields ``out_feats`` HR feature maps
    (default 3, the paper's size) and the objective's head makes the output from them.

    Options:
        n1, n2: maps of the two LR layers.
        out_feats: HR feature maps after the shuffle.
    """

    def __init__(self, scale: int, n1: int = 64, n2: int = 32, out_feats: int = 3):
        super().__init__()
        self.scale = check_scale(scale)
        check_positive(n1=n1, n2=n2, out_feats=out_feats)
        self.feature_channels = out_feats
        self.body = nn.Sequential(
            nn.Conv2d(3, n1, 5, padding=2),
            nn.Tanh(),
            nn.Conv2d(n1, n2, 3, padding=1),
            nn.Tanh(),
            nn.Conv2d(n2, out_feats * scale**2, 3, padding=1),
            nn.PixelShuffle(scale),
        )

    def forward(self, lr: Tensor) -> Tensor:
        return self.body(lr)
