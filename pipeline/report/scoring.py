"""Scores of one super-resolved image, and the time an objective's own decode takes.

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

import statistics
import time
from dataclasses import dataclass

import numpy as np
import torch

from pipeline.config import MetricsConfig
from pipeline.inference import SuperResolver
from pipeline.metrics import reference
from pipeline.metrics.fid_metric import FidMetric
from pipeline.metrics.lpips_metric import LpipsMetric
from pipeline.metrics.perceptual import weight_free_scores
from pipeline.metrics.regions import region_scores
from pipeline.metrics.spectrum import high_frequency_ratio

DECODE_REPEATS = 3
DECODE_WINDOW = 128


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


@torch.inference_mode()
def decode_ms_per_megapixel(resolver: SuperResolver, lr: np.ndarray, window: int = DECODE_WINDOW,
                            repeats: int = DECODE_REPEATS) -> float:
    """Median wall time, in milliseconds per megapixel of SR output, of ``objective.decode`` alone.

    The network and head run first, untimed, on the top-left ``window x window`` pixels of the
    ``h x w x 3`` uint8 ``lr``; only the decode of their output is timed, ``repeats`` times, with
    the device synchronised around each call. Decoding is per pixel, so a fixed window gives a
    per-megapixel cost independent of image and tile sizes.
    """
    weights = next(resolver.parameters())
    crop = np.ascontiguousarray(lr[:window, :window])
    batch = torch.from_numpy(crop).to(weights.device).permute(2, 0, 1).unsqueeze(0).to(weights.dtype) / 255
    head_output = resolver.objective(resolver.net(batch))
    timings = []
    for _ in range(repeats):
        _synchronize(weights.device)
        start = time.perf_counter()
        decoded = resolver.objective.decode(head_output)
        _synchronize(weights.device)
        timings.append(time.perf_counter() - start)
    megapixels = decoded.shape[-2] * decoded.shape[-1] / 1e6
    return 1000 * statistics.median(timings) / megapixels


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
