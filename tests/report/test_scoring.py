"""Image scores follow the reference metrics; decode time excludes the network forward."""

from __future__ import annotations

import time

import numpy as np
import torch
from torch import Tensor, nn

from pipeline.config import MetricsConfig
from pipeline.inference import SuperResolver
from pipeline.metrics import reference
from pipeline.metrics.perceptual import weight_free_scores
from pipeline.metrics.regions import region_scores
from pipeline.metrics.spectrum import high_frequency_ratio
from pipeline.objectives.base import Objective
from pipeline.report.scoring import ImageScorer, decode_ms_per_megapixel

DECODE_SECONDS = 0.02
FORWARD_SECONDS = 0.2


def _pair(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    hr = rng.integers(0, 256, (32, 36, 3), dtype=np.uint8)
    sr = np.clip(hr.astype(int) + rng.integers(-9, 10, hr.shape), 0, 255).astype(np.uint8)
    return sr, hr


class _ConstantLpips(nn.Module):
    """Stands in for LPIPS in tests: records its inputs, returns a fixed distance."""

    def forward(self, sr: Tensor, hr: Tensor) -> Tensor:
        self.shapes = (tuple(sr.shape), tuple(hr.shape))
        return torch.tensor([0.25])


def test_psnr_and_ssim_are_the_reference_metrics_with_crop_equal_to_the_scale():
    sr, hr = _pair()
    scorer = ImageScorer.for_scale(MetricsConfig(), 3, None, torch.device("cpu"))
    assert scorer(sr, hr) == {"psnr": reference.psnr(sr, hr, 3, True), "ssim": reference.ssim(sr, hr, 3, True),
                              **region_scores(sr, hr, 3, True), **weight_free_scores(sr, hr, 3, True),
                              "hf_ratio": high_frequency_ratio(sr, hr, 3, True, 3)}
    rgb = ImageScorer.for_scale(MetricsConfig(crop_border=0, y_channel=False), 3, None, torch.device("cpu"))
    assert rgb(sr, hr)["psnr"] == reference.psnr(sr, hr, 0, False) != scorer(sr, hr)["psnr"]


def test_lpips_is_measured_on_the_cropped_region_when_loaded():
    sr, hr = _pair()
    lpips = _ConstantLpips()
    scores = ImageScorer.for_scale(MetricsConfig(), 2, lpips, torch.device("cpu"))(sr, hr)
    assert scores["lpips"] == 0.25
    assert lpips.shapes == ((1, 3, 28, 32), (1, 3, 28, 32))


class _SlowNet(nn.Module):
    scale = 2
    feature_channels = 4

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 1)

    def forward(self, lr: Tensor) -> Tensor:
        time.sleep(FORWARD_SECONDS)
        return self.conv(nn.functional.interpolate(lr, scale_factor=2))


class _SlowDecode(Objective):
    def decode(self, out: Tensor) -> Tensor:
        time.sleep(DECODE_SECONDS)
        return out


def test_decode_time_is_the_decode_alone_per_megapixel_of_output():
    torch.manual_seed(0)
    resolver = SuperResolver(_SlowNet(), _SlowDecode(4, 2), "slow", "slow").eval()
    lr = np.zeros((50, 40, 3), dtype=np.uint8)
    measured = decode_ms_per_megapixel(resolver, lr, window=32)
    megapixels = 64 * 64 / 1e6
    assert DECODE_SECONDS * 1000 / megapixels <= measured < FORWARD_SECONDS * 1000 / megapixels
