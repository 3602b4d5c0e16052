"""Scores of one super-resolved image, and the time a model takes to super-resolve a megapixel.

PSNR and SSIM follow the recipe behind published SR tables: the 8-bit SR image against the HR
image modcropped to the scale, in float64 (``pipeline.metrics.reference``), with
``metrics.crop_border`` pixels (default: the scale) cropped from every side, on the BT.601 Y
channel when ``metrics.y_channel``. LPIPS (Zhang et al. 2018) is measured on the same cropped RGB
region, and only when its pretrained weights were loaded. The region scores (PSNR on textured and
flat pixels, dark artefacts per megapixel) are ``pipeline.metrics.regions``', the weight-free
perceptual metrics (HaarPSI, MDSI, MS-GMSD) ``pipeline.metrics.perceptual``'s and the
high-frequency energy ratio ``pipeline.metrics.spectrum``'s, all on PSNR's crop and channel. FID is a score of a
set, not of an image: ``fid_features`` gives each image's patch features for it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from pipeline.config import MetricsConfig
from pipeline.metrics import reference
from pipeline.metrics.fid_metric import FidMetric
from pipeline.metrics.lpips_metric import LpipsMetric
from pipeline.metrics.perceptual import weight_free_scores
from pipeline.metrics.regions import region_scores
from pipeline.metrics.spectrum import high_frequency_ratio

@dataclass(frozen=True)
class ImageScorer:
    """``scorer(sr, hr) -> {"psnr", "ssim"[, "lpips"], region scores, weight-free scores, "hf_ratio"}`` for
    ``H x W x 3`` uint8 images of equal size, upscaled ``scale`` times."""

    crop_border: int
    y_channel: bool
    scale: int
    lpips: LpipsMetric | None
    device: torch.device
    fid: FidMetric | None = None

    @classmethod
    def for_scale(cls, config: MetricsConfig, scale: int, lpips: LpipsMetric | None, device: torch.device,
                  fid: FidMetric | None = None) -> ImageScorer:
        crop = scale if config.crop_border is None else config.crop_border
        return cls(crop, config.y_channel, scale, lpips, device, fid)

    def fid_features(self, image: np.ndarray) -> np.ndarray:
        """FID Inception features of the cropped image's patches (``[0, 2048]`` without FID weights)."""
        if self.fid is None:
            return np.zeros((0, 2048))
        border = self.crop_border
        return self.fid.features(self.fid.patches(image[border:image.shape[0] - border,
                                                        border:image.shape[1] - border]))

    def __call__(self, sr: np.ndarray, hr: np.ndarray) -> dict[str, float]:
        scores = {"psnr": reference.psnr(sr, hr, self.crop_border, self.y_channel),
                  "ssim": reference.ssim(sr, hr, self.crop_border, self.y_channel)}
        if self.lpips is not None:
            scores["lpips"] = self._lpips(sr, hr)
        scores.update(region_scores(sr, hr, self.crop_border, self.y_channel))
        scores.update(weight_free_scores(sr, hr, self.crop_border, self.y_channel))
        scores["hf_ratio"] = high_frequency_ratio(sr, hr, self.crop_border, self.y_channel, self.scale)
        return scores

    def _lpips(self, sr: np.ndarray, hr: np.ndarray) -> float:
        border = self.crop_border
        window = np.s_[border:sr.shape[0] - border, border:sr.shape[1] - border]
        batches = [torch.from_numpy(np.ascontiguousarray(image[window])).to(self.device)
                   .permute(2, 0, 1).unsqueeze(0).float() / 255 for image in (sr, hr)]
        return float(self.lpips(*batches).item())


class TimedUpscale:
    """``upscale(lr)`` that also sums its wall time and output pixels: ``ms_per_megapixel`` is what super-resolving
    cost per megapixel of output (network, head, decode and the 8-bit result: everything ``upscale`` does
    but reading and writing files), measured on the images being scored, so it costs no extra run."""

    def __init__(self, upscale: Callable[[np.ndarray], np.ndarray]):
        self.upscale = upscale
        self.seconds = 0.0
        self.pixels = 0

    def __call__(self, lr: np.ndarray) -> np.ndarray:
        start = time.perf_counter()
        sr = self.upscale(lr)
        self.seconds += time.perf_counter() - start
        self.pixels += sr.shape[0] * sr.shape[1]
        return sr

    def ms_per_megapixel(self) -> float:
        return 1000 * self.seconds / (self.pixels / 1e6)
