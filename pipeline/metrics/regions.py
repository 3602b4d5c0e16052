"""Region metrics behind the seed papers' qualitative claims: texture vs flat PSNR, dark artefacts.

*Texture.* The fine-grained dynamic loss is claimed to help "especially on texture". A pixel is
textured when the local standard deviation of the HR luma over a ``TEXTURE_WINDOW`` square
(reflected at the border) is at least ``TEXTURE_STD`` grey levels (of 255), flat otherwise; PSNR
is then ``10 log10(255^2 / MSE)`` over each region's pixels. The mask depends on the HR image
alone, so every method is measured on the same pixels.

*Dark artefacts.* Cross-entropy SR is reported to leave isolated black pixels, which FCS is
claimed to reduce. The proxy counts the luma pixels at least ``DARK_GAP`` grey levels (a quarter of
the range) darker than HR, per million measured pixels; a bicubic upsampling of a natural image
has next to none.

Both use the crop and channel of PSNR (``pipeline.metrics.reference.measured_planes``).
"""

from __future__ import annotations

import math

import numpy as np
from scipy.ndimage import uniform_filter

from pipeline.metrics.reference import PEAK, measured_planes

TEXTURE_WINDOW = 7
TEXTURE_STD = 10.0
DARK_GAP = 64.0


def texture_mask(hr_plane: np.ndarray) -> np.ndarray:
    """Boolean ``H x W``: local std of the float64 plane over ``TEXTURE_WINDOW`` >= ``TEXTURE_STD``."""
    mean = uniform_filter(hr_plane, TEXTURE_WINDOW, mode="reflect")
    mean_square = uniform_filter(hr_plane * hr_plane, TEXTURE_WINDOW, mode="reflect")
    return np.sqrt(np.maximum(mean_square - mean * mean, 0.0)) >= TEXTURE_STD


def region_scores(sr: np.ndarray, hr: np.ndarray, crop_border: int, y_channel: bool) -> dict[str, float]:
    """``psnr_texture``, ``psnr_flat`` (NaN for an empty region), ``texture_fraction`` and
    ``dark_per_mp`` of one ``H x W x 3`` SR image against its HR image."""
    sr_planes, hr_planes = measured_planes(sr, hr, crop_border, y_channel)
    luma_sr, luma_hr = sr_planes.mean(axis=2), hr_planes.mean(axis=2)
    textured = texture_mask(luma_hr)
    squared = ((sr_planes - hr_planes) ** 2).mean(axis=2)
    dark = np.count_nonzero(luma_hr - luma_sr >= DARK_GAP)
    return {"psnr_texture": _psnr(squared[textured]), "psnr_flat": _psnr(squared[~textured]),
            "texture_fraction": float(textured.mean()), "dark_per_mp": float(1e6 * dark / luma_hr.size)}


def _psnr(squared_errors: np.ndarray) -> float:
    if squared_errors.size == 0:
        return math.nan
    mse = float(squared_errors.mean())
    return math.inf if mse == 0 else 10.0 * math.log10(PEAK**2 / mse)
