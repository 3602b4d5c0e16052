"""Float64 numpy PSNR and SSIM: the MATLAB recipe behind published SR tables.

Inputs are ``H x W x 3`` RGB images on 0..255 (uint8 or float). ``crop_border`` pixels are
removed from every side before measuring; ``y_channel`` measures the BT.601 luma
(``pipeline.metrics.color``) instead of RGB. These functions are the ground truth the batched
torch metrics are tested against; they are not meant to be fast.
"""

from __future__ import annotations

import math

import numpy as np

from pipeline.errors import PipelineError
from pipeline.metrics.color import rgb_to_y_numpy

PEAK = 255.0
SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_K1 = 0.01
SSIM_K2 = 0.03


def gaussian_window_1d(size: int = SSIM_WINDOW, sigma: float = SSIM_SIGMA) -> np.ndarray:
    """Normalised 1-D Gaussian ``g``; ``outer(g, g)`` is MATLAB's ``fspecial('gaussian', size, sigma)``."""
    offsets = np.arange(size, dtype=np.float64) - (size - 1) / 2
    weights = np.exp(-(offsets**2) / (2 * sigma**2))
    return weights / weights.sum()


def psnr(sr: np.ndarray, hr: np.ndarray, crop_border: int, y_channel: bool) -> float:
    """``PSNR = 10 log10(255^2 / MSE)`` in dB, MSE over all pixels (and all channels for RGB).

    Identical images give ``inf``.
    """
    sr_planes, hr_planes = measured_planes(sr, hr, crop_border, y_channel)
    mse = float(np.mean((sr_planes - hr_planes) ** 2))
    return math.inf if mse == 0 else 10.0 * math.log10(PEAK**2 / mse)


def ssim(sr: np.ndarray, hr: np.ndarray, crop_border: int, y_channel: bool) -> float:
    """Mean SSIM (Wang et al. 2004, "Image quality assessment: from error visibility to
    structural similarity", eq. 13) over the 'valid' region of an 11x11 Gaussian window
    (sigma 1.5), with ``C1 = (0.01 * 255)^2`` and ``C2 = (0.03 * 255)^2``.

    For RGB the result is the mean of the three per-channel SSIMs.
    """
    sr_planes, hr_planes = measured_planes(sr, hr, crop_border, y_channel)
    height, width = sr_planes.shape[:2]
    if min(height, width) < SSIM_WINDOW:
        raise PipelineError(
            f"SSIM needs at least {SSIM_WINDOW}x{SSIM_WINDOW} pixels after cropping {crop_border} per side "
            f"but the image leaves {height}x{width}; use larger images or a smaller crop_border"
        )
    window = gaussian_window_1d()
    per_channel = [_ssim_plane(sr_planes[..., c], hr_planes[..., c], window) for c in range(sr_planes.shape[2])]
    return float(np.mean(per_channel))


def _ssim_plane(x: np.ndarray, y: np.ndarray, window: np.ndarray) -> float:
    c1 = (SSIM_K1 * PEAK) ** 2
    c2 = (SSIM_K2 * PEAK) ** 2
    mu_x = _filter_valid(x, window)
    mu_y = _filter_valid(y, window)
    var_x = _filter_valid(x * x, window) - mu_x**2
    var_y = _filter_valid(y * y, window) - mu_y**2
    cov_xy = _filter_valid(x * y, window) - mu_x * mu_y
    numerator = (2 * mu_x * mu_y + c1) * (2 * cov_xy + c2)
    denominator = (mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2)
    return float(np.mean(numerator / denominator))


def _filter_valid(plane: np.ndarray, window: np.ndarray) -> np.ndarray:
    """Separable correlation with ``outer(window, window)``, keeping only fully covered pixels."""
    size = window.shape[0]
    rows = np.lib.stride_tricks.sliding_window_view(plane, size, axis=0) @ window
    return np.lib.stride_tricks.sliding_window_view(rows, size, axis=1) @ window


def measured_planes(
    sr: np.ndarray, hr: np.ndarray, crop_border: int, y_channel: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Validate, crop and convert both images to float64 ``H x W x C`` (C = 1 for Y, 3 for RGB)."""
    sr = np.asarray(sr)
    hr = np.asarray(hr)
    if sr.shape != hr.shape or sr.ndim != 3 or sr.shape[2] != 3:
        raise PipelineError(
            f"metrics need two H x W x 3 RGB images of the same size, got {sr.shape} (SR) and {hr.shape} (HR); "
            "crop or resize them to match"
        )
    if int(crop_border) != crop_border or crop_border < 0:
        raise PipelineError(f"crop_border must be a non-negative integer (got {crop_border}); fix metrics.crop_border")
    height, width = sr.shape[:2]
    if 2 * crop_border >= min(height, width):
        raise PipelineError(
            f"crop_border {crop_border} removes the whole {height}x{width} image; use a smaller crop_border"
        )
    if crop_border:
        sr = sr[crop_border:-crop_border, crop_border:-crop_border]
        hr = hr[crop_border:-crop_border, crop_border:-crop_border]
    if y_channel:
        return rgb_to_y_numpy(sr)[..., None], rgb_to_y_numpy(hr)[..., None]
    return sr.astype(np.float64), hr.astype(np.float64)
