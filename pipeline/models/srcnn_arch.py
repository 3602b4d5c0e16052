"""SRCNN: Dong et al., "Learning a Deep Convolutional Network for Image Super-Resolution", ECCV 2014
(and "Image Super-Resolution Using Deep Convolutional Networks", TPAMI 2016, for the 9-5-5 variant)."""

from __future__ import annotations

from torch import Tensor, nn

from pipeline.models.base import bicubic_upsample, check_positive, check_scale
from pipeline.models.registry import register_model


@register_model("srcnn")
class SRCNN(nn.Module):
    """Pre-upsampling SRCNN: ``Y = bicubic(LR)``, ``F1 = ReLU(W1 * Y + B1)``, ``F2 = ReLU(W2 * F1 + B2)``.

    ``W1`` has ``n1`` filters of ``f1 x f1`` and ``W2`` has ``n2`` of ``f2 x f2`` (defaults: the
    9-5-5 network with 64/32 maps; ``f2=1`` gives the ECCV 9-1-5 base network). The paper's
    reconstruction layer (``f3 = 5``, to the image) is the objective's head, so the features
    are ``F2`` with ``n2`` channels. Zero padding keeps the size, unlike the paper's valid convolutions.

    Options:
        n1, n2: filters of ``W1`` and ``W2``.
        f1, f2: kernel sides of ``W1`` and ``W2``.
    """

    def __init__(self, scale: int, n1: int = 64, n2: int = 32, f1: int = 9, f2: int = 5):
        super().__init__()
        self.scale = check_scale(scale)
        check_positive(n1=n1, n2=n2, f1=f1, f2=f2)
        if f1 % 2 == 0 or f2 % 2 == 0:
            raise ValueError(f"kernel sizes f1 and f2 must be odd to keep the image size (got {f1} and {f2})")
        self.feature_channels = n2
        self.body = nn.Sequential(
            nn.Conv2d(3, n1, f1, padding=f1 // 2),
            nn.ReLU(inplace=True),
            nn.Conv2d(n1, n2, f2, padding=f2 // 2),
            nn.ReLU(inplace=True),
        )

    def forward(self, lr: Tensor) -> Tensor:
        return self.body(bicubic_upsample(lr, self.scale))
