"""VDSR: Kim et al., "Accurate Image Super-Resolution Using Very Deep Convolutional Networks", CVPR 2016."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from pipeline.models.base import bicubic_upsample, check_positive, check_scale
from pipeline.models.registry import register_model


@register_model("vdsr")
class VDSR(nn.Module):
    """Pre-upsampling VDSR with global residual learning, ending before its last layer.

    ``x = bicubic(LR)``, ``h_1 = ReLU(conv(x))``, ``h_i = ReLU(conv(h_{i-1}))`` for ``i < depth``;
    the paper's layer ``depth`` predicts the residual ``r`` and ``SR = x + r``. That layer is the
    objective's head; to keep the residual path available to any head, the features are
    ``concat(h_{depth-1}, x)`` with ``n_feats + 3`` channels. 3x3 convolutions, zero padding and
    He initialisation as in the paper (default depth 20, 64 maps).

    Options:
        depth: the paper's layer count (the last is the head).
        n_feats: maps per convolution.
    """

    def __init__(self, scale: int, depth: int = 20, n_feats: int = 64):
        super().__init__()
        self.scale = check_scale(scale)
        check_positive(n_feats=n_feats)
        if isinstance(depth, bool) or not isinstance(depth, int) or depth < 2:
            raise ValueError(f"'depth' (the paper's layer count, head included) must be >= 2 (got {depth!r})")
        self.feature_channels = n_feats + 3
        layers: list[nn.Module] = [nn.Conv2d(3, n_feats, 3, padding=1), nn.ReLU(inplace=True)]
        for _ in range(depth - 2):
            layers += [nn.Conv2d(n_feats, n_feats, 3, padding=1), nn.ReLU(inplace=True)]
        self.body = nn.Sequential(*layers)
        for module in self.body:
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
                nn.init.zeros_(module.bias)

    def forward(self, lr: Tensor) -> Tensor:
        upsampled = bicubic_upsample(lr, self.scale)
        return torch.cat([self.body(upsampled), upsampled], dim=1)
