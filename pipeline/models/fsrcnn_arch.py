"""FSRCNN: Dong et al., "Accelerating the Super-Resolution Convolutional Neural Network", ECCV 2016."""

from __future__ import annotations

from torch import Tensor, nn

from pipeline.models.base import check_positive, check_scale
from pipeline.models.registry import register_model

DECONV_KERNEL = 9


@register_model("fsrcnn")
class FSRCNN(nn.Module):
    """Post-upsampling FSRCNN(d, s, m) with a learned deconvolution as the upsampler.

    Feature extraction ``Conv(5, d)``, shrinking ``Conv(1, s)``, mapping ``m x Conv(3, s)``,
    expanding ``Conv(1, d)``, each followed by a channel-wise PReLU, then deconvolution
    ``DeConv(9, out_feats)`` with stride ``scale``. Padding and output padding make the output
    exactly ``scale`` times the input. Defaults: FSRCNN(56, 12, 4); the paper's FSRCNN-s is
    (32, 5, 1). The paper's deconvolution gives the image; here it gives ``out_feats`` HR
    feature maps (default 3) and the objective's head makes the output from them.

    Options:
        d: maps of feature extraction and expanding.
        s: maps after shrinking.
        m: mapping layers.
        out_feats: HR feature maps of the deconvolution.
    """

    def __init__(self, scale: int, d: int = 56, s: int = 12, m: int = 4, out_feats: int = 3):
        super().__init__()
        self.scale = check_scale(scale, f"an integer from 2 to {DECONV_KERNEL}", lambda r: r <= DECONV_KERNEL)
        check_positive(d=d, s=s, m=m, out_feats=out_feats)
        self.feature_channels = out_feats
        layers: list[nn.Module] = [nn.Conv2d(3, d, 5, padding=2), nn.PReLU(d), nn.Conv2d(d, s, 1), nn.PReLU(s)]
        for _ in range(m):
            layers += [nn.Conv2d(s, s, 3, padding=1), nn.PReLU(s)]
        layers += [nn.Conv2d(s, d, 1), nn.PReLU(d)]
        self.body = nn.Sequential(*layers)
        padding = (DECONV_KERNEL - scale + 1) // 2
        self.deconv = nn.ConvTranspose2d(
            d, out_feats, DECONV_KERNEL, stride=scale, padding=padding,
            output_padding=2 * padding - (DECONV_KERNEL - scale),
        )

    def forward(self, lr: Tensor) -> Tensor:
        return self.deconv(self.body(lr))
