"""The validator: metric keys per set, SR path equal to the bicubic path for a bicubic network,
samples aligned with the images, train/eval modes restored."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from pipeline.config import MetricsConfig
from pipeline.data.paired import load_pairs
from pipeline.degrade.imresize import imresize
from pipeline.objectives.base import Objective
from pipeline.train.device import plan_device
from pipeline.train.validation import Validator


class MatlabBicubic(nn.Module):
    """A 'network' that is MATLAB bicubic upscaling; its features are RGB."""

    feature_channels = 3

    def __init__(self, scale: int):
        super().__init__()
        self.scale = scale

    def forward(self, lr: torch.Tensor) -> torch.Tensor:
        return imresize(lr, scale=self.scale).float()


class IdentityObjective(Objective):
    def make_head(self, in_channels: int) -> nn.Module:
        return nn.Identity()


@pytest.fixture
def validator(tiny_data):
    config = tiny_data.train
    sets = {split: load_pairs(tiny_data.data_dir, config.degradation, config.scale, split) for split in ("val", "Tiny")}
    return Validator(sets, config.scale, MetricsConfig(lpips={"enabled": False}), plan_device(config),
                     sample_count=1, sample_crop=16)


def test_a_bicubic_network_scores_the_bicubic_baseline(validator):
    net, objective = MatlabBicubic(2).train(), IdentityObjective(3, 2).train()
    metrics, samples = validator(net, objective)
    kinds = ("psnr", "ssim", "bicubic_psnr", "bicubic_ssim")
    assert set(metrics) == {f"{split}/{kind}" for split in ("val", "Tiny") for kind in kinds}
    for split in ("val", "Tiny"):
        assert metrics[f"{split}/psnr"] == pytest.approx(metrics[f"{split}/bicubic_psnr"], abs=1e-6)
        assert metrics[f"{split}/ssim"] == pytest.approx(metrics[f"{split}/bicubic_ssim"], abs=1e-9)
    assert 20 < metrics["val/bicubic_psnr"] < 60
    assert net.training and objective.training
    (sample,) = samples
    np.testing.assert_array_equal(sample.sr, sample.bicubic)
    hr = validator.sets["val"][0].hr
    top, left = (hr.shape[0] - 16) // 2, (hr.shape[1] - 16) // 2
    np.testing.assert_array_equal(sample.hr, hr[top : top + 16, left : left + 16])
    assert sample.name == "img0" and sample.sr.dtype == np.uint8 and sample.sr.shape == (16, 16, 3)


def test_a_worse_network_scores_lower(validator):
    class Darker(MatlabBicubic):
        def forward(self, lr):
            return super().forward(lr) * 0.8

    metrics, _ = validator(Darker(2), IdentityObjective(3, 2))
    assert metrics["val/psnr"] < metrics["val/bicubic_psnr"] - 3
