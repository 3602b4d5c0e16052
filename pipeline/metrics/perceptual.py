"""Full-reference perceptual metrics that need no pretrained weights: HaarPSI, MDSI, MS-GMSD.

They are ``piq``'s implementations (pinned in ``requirements.lock``), measured on the crop and
channel of PSNR (``pipeline.metrics.reference.measured_planes``), on 0..255 in float32 (within
1e-5 of float64 and about 5x faster on a CPU):

- ``haarpsi``: Haar wavelet-based perceptual similarity (Reisenhofer et al. 2018, "A Haar wavelet-based
  perceptual similarity index for image quality assessment"), 1 for identical images, higher is better.
- ``mdsi``: mean deviation similarity index (Nafchi et al. 2016, "Mean deviation similarity index:
  efficient and reliable full-reference image quality evaluator"), 0 for identical images, lower is
  better. MDSI is defined on colour (its chromaticity term), so it always measures the cropped RGB.
- ``ms_gmsd``: multi-scale gradient magnitude similarity deviation (Zhang et al. 2017, "Gradient
  magnitude similarity deviation on multiple scales for color image quality assessment"), on luma,
  0 for identical images, lower is better.

On TID2013 and KADID-10k they rank distorted images closer to human scores than LPIPS does (figures
and their source in ``docs/metrics.md``); they are evidence beside LPIPS, never LPIPS.
"""

from __future__ import annotations

import numpy as np
import piq
import torch

from pipeline.errors import PipelineError
from pipeline.metrics.reference import PEAK, measured_planes

WEIGHT_FREE = ("haarpsi", "mdsi", "ms_gmsd")
MIN_SIZE = 17  # MS-GMSD's four scales need 2^4 + 1 pixels; HaarPSI's three need 16


def weight_free_scores(sr: np.ndarray, hr: np.ndarray, crop_border: int, y_channel: bool) -> dict[str, float]:
    """``haarpsi``, ``mdsi`` and ``ms_gmsd`` of one ``H x W x 3`` SR image against its HR image."""
    sr_planes, hr_planes = (_batch(planes) for planes in measured_planes(sr, hr, crop_border, y_channel))
    height, width = sr_planes.shape[-2:]
    if min(height, width) < MIN_SIZE:
        raise PipelineError(
            f"HaarPSI and MS-GMSD need at least {MIN_SIZE}x{MIN_SIZE} pixels after cropping {crop_border} per "
            f"side but the image leaves {height}x{width}; use larger images or a smaller crop_border"
        )
    sr_rgb, hr_rgb = (_batch(planes) for planes in measured_planes(sr, hr, crop_border, False))
    return {"haarpsi": float(piq.haarpsi(sr_planes, hr_planes, data_range=PEAK)),
            "mdsi": float(piq.mdsi(sr_rgb, hr_rgb, data_range=PEAK)),
            "ms_gmsd": float(piq.multi_scale_gmsd(sr_planes, hr_planes, data_range=PEAK))}


def _batch(planes: np.ndarray) -> torch.Tensor:
    """``H x W x C`` float64 -> float32 ``1 x C x H x W``."""
    return torch.from_numpy(np.ascontiguousarray(planes)).permute(2, 0, 1).unsqueeze(0).float()
