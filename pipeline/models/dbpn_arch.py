"""DBPN: Haris et al., "Deep Back-Projection Networks for Super-Resolution", CVPR 2018."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from pipeline.models.base import check_positive, check_scale
from pipeline.models.registry import register_model

PROJECTION_GEOMETRY = {2: (6, 2, 2), 3: (7, 3, 2), 4: (8, 4, 2), 8: (12, 8, 2)}
"""Scale -> (kernel, stride, padding) of every projection convolution, as in the paper."""


def bottleneck(in_channels: int, n_feats: int) -> nn.Module:
    """1x1 convolution + PReLU that fuses concatenated (dense) inputs; identity for a single input."""
    return nn.Sequential(nn.Conv2d(in_channels, n_feats, 1), nn.PReLU()) if in_channels != n_feats else nn.Identity()


def upscale(n_feats: int, scale: int) -> nn.Module:
    return nn.Sequential(nn.ConvTranspose2d(n_feats, n_feats, *PROJECTION_GEOMETRY[scale]), nn.PReLU())


def downscale(n_feats: int, scale: int) -> nn.Module:
    return nn.Sequential(nn.Conv2d(n_feats, n_feats, *PROJECTION_GEOMETRY[scale]), nn.PReLU())


class UpProjection(nn.Module):
    """``H0 = up(L)``, ``L0 = down(H0)``, ``H1 = up_error(L0 - L)``, output ``H0 + H1``."""

    def __init__(self, in_channels: int, n_feats: int, scale: int):
        super().__init__()
        self.bottleneck = bottleneck(in_channels, n_feats)
        self.up, self.down = upscale(n_feats, scale), downscale(n_feats, scale)
        self.up_error = upscale(n_feats, scale)

    def forward(self, low: Tensor) -> Tensor:
        low = self.bottleneck(low)
        high = self.up(low)
        return high + self.up_error(self.down(high) - low)


class DownProjection(nn.Module):
    """``L0 = down(H)``, ``H0 = up(L0)``, ``L1 = down_error(H0 - H)``, output ``L0 + L1``."""

    def __init__(self, in_channels: int, n_feats: int, scale: int):
        super().__init__()
        self.bottleneck = bottleneck(in_channels, n_feats)
        self.down, self.up = downscale(n_feats, scale), upscale(n_feats, scale)
        self.down_error = downscale(n_feats, scale)

    def forward(self, high: Tensor) -> Tensor:
        high = self.bottleneck(high)
        low = self.down(high)
        return low + self.down_error(self.up(low) - high)


@register_model("dbpn")
class DBPN(nn.Module):
    """Iterative up-and-down (D-)DBPN: ``stages`` up-projections alternating with ``stages - 1`` down-projections.

    Initial features ``L_0 = PReLU(conv1x1(PReLU(conv3x3(LR))))`` with ``n_init`` then ``n_feats``
    maps; ``H_t = Up_t(L_{t-1})`` and ``L_t = Down_t(H_t)``. With ``dense=True`` (D-DBPN) a unit
    takes the concatenation of all earlier outputs of the other kind (``L_1..L_{t-1}``, resp.
    ``H_1..H_t``) through a 1x1 bottleneck. Projection convolutions use the paper's kernel,
    stride and padding per scale (x2: 6/2/2, x3: 7/3/2, x4: 8/4/2, x8: 12/8/2); activations are
    PReLU. The paper's reconstruction ``conv3x3([H_1, ..., H_T])`` is the objective's head, so
    the features are ``[H_1, ..., H_T]`` with ``stages * n_feats`` channels. Defaults: D-DBPN
    (T = 7, 256 / 64 maps, dense).

    Options:
        stages: ``T``, the number of up-projections.
        n_feats: maps per projection unit.
        n_init: maps of the first initial convolution.
        dense: D-DBPN's dense connections (False: DBPN).
    """

    def __init__(self, scale: int, stages: int = 7, n_feats: int = 64, n_init: int = 256, dense: bool = True):
        super().__init__()
        self.scale = check_scale(scale, "2, 3, 4 or 8", PROJECTION_GEOMETRY.__contains__)
        check_positive(stages=stages, n_feats=n_feats, n_init=n_init)
        if not isinstance(dense, bool):
            raise ValueError(f"'dense' must be true or false (got {dense!r})")
        self.dense = dense
        self.feature_channels = stages * n_feats
        self.initial = nn.Sequential(
            nn.Conv2d(3, n_init, 3, padding=1), nn.PReLU(), nn.Conv2d(n_init, n_feats, 1), nn.PReLU()
        )
        inputs_of_up = [max(t, 1) if self.dense else 1 for t in range(stages)]
        inputs_of_down = [t + 1 if self.dense else 1 for t in range(stages - 1)]
        self.ups = nn.ModuleList(UpProjection(n * n_feats, n_feats, scale) for n in inputs_of_up)
        self.downs = nn.ModuleList(DownProjection(n * n_feats, n_feats, scale) for n in inputs_of_down)

    def forward(self, lr: Tensor) -> Tensor:
        lows, highs = [self.initial(lr)], []
        for t, up in enumerate(self.ups):
            highs.append(up(torch.cat(lows[1:], dim=1) if self.dense and t > 0 else lows[-1]))
            if t < len(self.downs):
                lows.append(self.downs[t](torch.cat(highs, dim=1) if self.dense else highs[-1]))
        return torch.cat(highs, dim=1)
