"""Per-image distances ``D(x, y) -> [B]`` for the TLW weight criterion (``pipeline.objectives.tlw_loss``).

The paper uses unlearned VGG LPIPS (Zhang et al., CVPR 2018, "lin" layers omitted), which needs
ImageNet weights. ``multiscale`` needs none and is the offline default: a structural (SSIM) plus
absolute (L1) difference averaged over a three-level image pyramid, which, like a perceptual
distance, rewards restoring structure at several scales rather than only pixel values.
"""

from __future__ import annotations

from pathlib import Path

import torch.nn.functional as F
from torch import Tensor, nn

from pipeline.objectives.lowpass import gaussian_kernel_1d
from pipeline.objectives.pretrained import VGGFeatures

PYRAMID_LEVELS = 3
SSIM_C1 = 0.01**2
SSIM_C2 = 0.03**2
LPIPS_LAYERS = {
    "vgg16": ("relu1_2", "relu2_2", "relu3_3", "relu4_3", "relu5_3"),
    "vgg19": ("relu1_2", "relu2_2", "relu3_4", "relu4_4", "relu5_4"),
}


class MultiScaleDistance(nn.Module):
    """``D = (1/L) sum_l [ mean|x_l - y_l| + 1 - mean SSIM(x_l, y_l) ]`` over 2x2-average pyramid levels ``l``.

    SSIM (Wang et al., TIP 2004) uses a 7-tap Gaussian window (sigma 1.5) with reflect padding,
    ``C1 = 0.01^2``, ``C2 = 0.03^2`` for images in [0, 1]. ``D(x, x) = 0``.
    """

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("window", gaussian_kernel_1d(1.5, 7), persistent=False)

    def _blur(self, x: Tensor) -> Tensor:
        channels, size = x.shape[1], self.window.numel()
        pad = size // 2
        mode = "reflect" if min(x.shape[-2:]) > pad else "replicate"
        taps = self.window.to(x.dtype)
        x = F.pad(x, (pad, pad, pad, pad), mode=mode)
        x = F.conv2d(x, taps.view(1, 1, 1, size).expand(channels, 1, 1, size), groups=channels)
        return F.conv2d(x, taps.view(1, 1, size, 1).expand(channels, 1, size, 1), groups=channels)

    def _ssim(self, x: Tensor, y: Tensor) -> Tensor:
        mu_x, mu_y = self._blur(x), self._blur(y)
        var_x = self._blur(x * x) - mu_x**2
        var_y = self._blur(y * y) - mu_y**2
        cov = self._blur(x * y) - mu_x * mu_y
        numerator = (2 * mu_x * mu_y + SSIM_C1) * (2 * cov + SSIM_C2)
        denominator = (mu_x**2 + mu_y**2 + SSIM_C1) * (var_x + var_y + SSIM_C2)
        return (numerator / denominator).mean(dim=(1, 2, 3))

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        total = x.new_zeros(x.shape[0])
        for level in range(PYRAMID_LEVELS):
            if level:
                x, y = F.avg_pool2d(x, 2), F.avg_pool2d(y, 2)
            total = total + (x - y).abs().mean(dim=(1, 2, 3)) + 1 - self._ssim(x, y)
        return total / PYRAMID_LEVELS


class UnlearnedVGGDistance(nn.Module):
    """``D = sum_l mean_hw sum_c (phi_l(x) / |phi_l(x)| - phi_l(y) / |phi_l(y)|)^2`` (LPIPS without "lin").

    ``phi_l``: ImageNet VGG activations at the five LPIPS layers (``pipeline.objectives.pretrained``),
    unit-normalised over channels. Raises ``PipelineError`` when the weights are missing.
    """

    def __init__(self, arch: str = "vgg16", weights: str | Path | None = None):
        super().__init__()
        if arch not in LPIPS_LAYERS:
            raise ValueError(f"vgg_arch must be one of {', '.join(LPIPS_LAYERS)}, got '{arch}'")
        self.features = VGGFeatures(LPIPS_LAYERS[arch], arch, weights, setting="loss.args.vgg_weights")

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        fx, fy = self.features(x), self.features(y)
        total = x.new_zeros(x.shape[0])
        for name in fx:
            a = fx[name] / (fx[name].norm(dim=1, keepdim=True) + 1e-10)
            b = fy[name] / (fy[name].norm(dim=1, keepdim=True) + 1e-10)
            total = total + (a - b).square().sum(dim=1).mean(dim=(1, 2))
        return total


def build_distance(name: str, vgg_arch: str, vgg_weights: str | Path | None) -> nn.Module:
    """``multiscale`` (no pretrained weights) or ``vgg`` (unlearned VGG LPIPS)."""
    if name == "multiscale":
        return MultiScaleDistance()
    if name == "vgg":
        return UnlearnedVGGDistance(vgg_arch, vgg_weights)
    raise ValueError(f"distance must be 'multiscale' or 'vgg', got '{name}'")
