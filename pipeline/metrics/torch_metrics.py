"""Batched PSNR, SSIM and MS-SSIM in torch for the validation loop.

Inputs are ``[B, 3, H, W]`` RGB in [0, 1] on any device; results are float64 ``[B]`` tensors on
that device, one value per image. Internally images are scaled to 0..255 and measured in float64
so the numbers match ``pipeline.metrics.reference`` (the MATLAB recipe) to ~1e-6. Quantising SR
to 8 bits first, as published tables do, is the caller's choice: see ``quantize``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from pipeline.errors import PipelineError
from pipeline.metrics.color import rgb_to_y_tensor
from pipeline.metrics.reference import PEAK, SSIM_K1, SSIM_K2, SSIM_WINDOW, gaussian_window_1d

MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)


def quantize(image: Tensor) -> Tensor:
    """``round(clamp(x, 0, 1) * 255) / 255``: what saving as 8-bit PNG would keep."""
    return torch.round(image.clamp(0, 1) * 255) / 255


def psnr(sr: Tensor, hr: Tensor, crop_border: int, y_channel: bool = True) -> Tensor:
    """Per-image ``PSNR = 10 log10(255^2 / MSE)`` in dB; identical images give ``inf``."""
    sr_planes, hr_planes = _measured_planes(sr, hr, crop_border, y_channel)
    mse = (sr_planes - hr_planes).pow(2).mean(dim=(1, 2, 3))
    return 10.0 * torch.log10(PEAK**2 / mse)


def ssim(sr: Tensor, hr: Tensor, crop_border: int, y_channel: bool = True) -> Tensor:
    """Per-image mean SSIM (Wang et al. 2004, eq. 13): 11x11 Gaussian window (sigma 1.5),
    'valid' filtering, ``C1 = (0.01 * 255)^2``, ``C2 = (0.03 * 255)^2``; RGB averages the channels."""
    sr_planes, hr_planes = _measured_planes(sr, hr, crop_border, y_channel)
    _require_window(sr_planes, crop_border)
    ssim_map, _ = _ssim_and_contrast_structure(sr_planes, hr_planes)
    return ssim_map.mean(dim=(1, 2, 3))


def ms_ssim(
    sr: Tensor,
    hr: Tensor,
    crop_border: int,
    y_channel: bool = True,
    weights: Sequence[float] = MS_SSIM_WEIGHTS,
) -> Tensor:
    """Per-image multi-scale SSIM (Wang, Simoncelli & Bovik 2003):
    ``prod_{j<M} cs_j^{w_j} * ssim_M^{w_M}``, where ``cs_j`` is the mean contrast-structure term at
    scale ``j``, ``ssim_M`` the mean SSIM at the coarsest scale, and scales are 2x2 average pools.

    Per channel, then averaged over channels. Negative ``cs``/``ssim`` means are clamped to 0 so the
    fractional powers stay real. Small images: scale ``j`` needs at least 11 pixels per side after
    ``j - 1`` halvings (176 for all five); when fewer scales fit, the coarsest ones are dropped and
    the remaining weights rescaled to the sum of all weights (then the value is not comparable to full
    5-scale MS-SSIM). Images under 11 pixels per side are an error.
    """
    if not weights or min(weights) <= 0:
        raise PipelineError(
            f"MS-SSIM weights must be a non-empty list of positive numbers (got {list(weights)}); fix them"
        )
    sr_planes, hr_planes = _measured_planes(sr, hr, crop_border, y_channel)
    _require_window(sr_planes, crop_border)
    scales = 1
    while scales < len(weights) and min(sr_planes.shape[-2:]) // 2**scales >= SSIM_WINDOW:
        scales += 1
    used = torch.tensor(weights[:scales], dtype=torch.float64, device=sr_planes.device)
    used = used * (sum(weights) / used.sum())
    factors = []
    for level in range(scales):
        ssim_map, contrast_structure = _ssim_and_contrast_structure(sr_planes, hr_planes)
        last = level == scales - 1
        factors.append((ssim_map if last else contrast_structure).mean(dim=(2, 3)).clamp_min(0))
        if not last:
            sr_planes = F.avg_pool2d(sr_planes, kernel_size=2)
            hr_planes = F.avg_pool2d(hr_planes, kernel_size=2)
    per_channel = torch.prod(torch.stack(factors, dim=-1) ** used, dim=-1)
    return per_channel.mean(dim=1)


def _ssim_and_contrast_structure(x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    """SSIM map and its contrast-structure factor ``(2 cov + C2) / (var_x + var_y + C2)``, 'valid' size."""
    c1 = (SSIM_K1 * PEAK) ** 2
    c2 = (SSIM_K2 * PEAK) ** 2
    mu_x = _gaussian_filter_valid(x)
    mu_y = _gaussian_filter_valid(y)
    var_x = _gaussian_filter_valid(x * x) - mu_x**2
    var_y = _gaussian_filter_valid(y * y) - mu_y**2
    cov_xy = _gaussian_filter_valid(x * y) - mu_x * mu_y
    contrast_structure = (2 * cov_xy + c2) / (var_x + var_y + c2)
    luminance = (2 * mu_x * mu_y + c1) / (mu_x**2 + mu_y**2 + c1)
    return luminance * contrast_structure, contrast_structure


def _gaussian_filter_valid(planes: Tensor) -> Tensor:
    """Depthwise separable 11x11 Gaussian correlation of ``[B, C, H, W]``, no padding."""
    channels = planes.shape[1]
    window = torch.from_numpy(gaussian_window_1d()).to(device=planes.device, dtype=planes.dtype)
    vertical = window.view(1, 1, -1, 1).expand(channels, 1, -1, 1)
    horizontal = window.view(1, 1, 1, -1).expand(channels, 1, 1, -1)
    return F.conv2d(F.conv2d(planes, vertical, groups=channels), horizontal, groups=channels)


def _require_window(planes: Tensor, crop_border: int) -> None:
    height, width = planes.shape[-2:]
    if min(height, width) < SSIM_WINDOW:
        raise PipelineError(
            f"SSIM needs at least {SSIM_WINDOW}x{SSIM_WINDOW} pixels after cropping {crop_border} per side "
            f"but the images leave {height}x{width}; use larger images or a smaller crop_border"
        )


def _measured_planes(sr: Tensor, hr: Tensor, crop_border: int, y_channel: bool) -> tuple[Tensor, Tensor]:
    """Validate, crop, scale to 0..255 in float64, and take Y when asked: ``[B, C, H, W]``."""
    if sr.shape != hr.shape or sr.dim() != 4 or sr.shape[1] != 3:
        raise PipelineError(
            f"metrics need two [B, 3, H, W] RGB batches of the same shape, got {tuple(sr.shape)} (SR) and "
            f"{tuple(hr.shape)} (HR); crop or resize them to match"
        )
    if int(crop_border) != crop_border or crop_border < 0:
        raise PipelineError(f"crop_border must be a non-negative integer (got {crop_border}); fix metrics.crop_border")
    height, width = sr.shape[-2:]
    if 2 * crop_border >= min(height, width):
        raise PipelineError(
            f"crop_border {crop_border} removes the whole {height}x{width} image; use a smaller crop_border"
        )
    if crop_border:
        sr = sr[..., crop_border:-crop_border, crop_border:-crop_border]
        hr = hr[..., crop_border:-crop_border, crop_border:-crop_border]
    sr = sr.to(torch.float64) * PEAK
    hr = hr.to(torch.float64) * PEAK
    if y_channel:
        return rgb_to_y_tensor(sr), rgb_to_y_tensor(hr)
    return sr, hr
