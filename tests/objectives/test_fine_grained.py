"""Fine-grained dynamic loss: bins, anchor width, regression only inside the anchor area."""

import math

import pytest
import torch
import torch.nn.functional as F

from pipeline.config import LossConfig
from pipeline.errors import ConfigError
from pipeline.objectives.fine_grained_loss import FineGrainedDynamicLoss, FineGrainedOutput
from pipeline.objectives.registry import build_objective
from pipeline.train.checkpoint import load_checkpoint, restore_networks
from pipeline.train.loop import fit
from tests.objectives.tiny_training import train_totals


def one_hot(index, classes, height=20.0):
    """``[B, 3*classes, H, W]`` logits with ``height`` at ``index`` (``[B, 3, H, W]``)."""
    b, c, h, w = index.shape
    logits = torch.zeros(b, c, classes, h, w)
    logits.scatter_(2, index.unsqueeze(2), height)
    return logits.view(b, c * classes, h, w)


def true_bins(hr, bins):
    return (hr * 255 / (256 / bins)).long().clamp(max=bins - 1)


@pytest.mark.parametrize("bins", [2, 16, 256])
def test_decode_lies_in_true_bin_when_bin_right_and_width_zero(bins):
    generator = torch.Generator().manual_seed(0)
    hr = torch.rand(2, 3, 6, 6, generator=generator)
    hr[0, 0, 0, :2] = torch.tensor([0.0, 1.0])
    objective = FineGrainedDynamicLoss(8, 2, terms={}, bins=bins, max_width=3, decode="anchor")
    k = true_bins(hr, bins)
    out = FineGrainedOutput(one_hot(k, bins), one_hot(torch.zeros_like(k), 4), 5 * torch.randn(2, 3, 6, 6, generator=generator))
    decoded = objective.decode(out) * 255
    size = 256 / bins
    assert (decoded >= k * size - 1e-4).all()
    assert (decoded <= torch.clamp((k + 1) * size, max=255) + 1e-4).all()


def test_regression_gradient_only_inside_anchor_area():
    generator = torch.Generator().manual_seed(3)
    hr = torch.rand(2, 3, 8, 8, generator=generator)
    objective = FineGrainedDynamicLoss(8, 2, terms={}, bins=8, max_width=2)
    bins = torch.randn(2, 3 * 8, 8, 8, generator=generator)
    width = torch.randn(2, 3 * 3, 8, 8, generator=generator)
    offset = torch.randn(2, 3, 8, 8, generator=generator, requires_grad=True)
    losses = objective.loss(FineGrainedOutput(bins, width, offset), hr)
    losses["total"].backward()
    center = bins.view(2, 3, 8, 8, 8).argmax(2)
    half = width.view(2, 3, 3, 8, 8).argmax(2)
    value = hr * 255
    inside = (value >= ((center - half) * 32).clamp(min=0)) & (value < ((center + half + 1) * 32).clamp(max=256))
    assert 0 < inside.sum() < inside.numel()
    assert (offset.grad[~inside] == 0).all()
    assert (offset.grad[inside] != 0).all()


def test_terms_match_independent_computation():
    generator = torch.Generator().manual_seed(1)
    hr = torch.rand(1, 3, 5, 5, generator=generator)
    out = FineGrainedOutput(*(torch.randn(1, c, 5, 5, generator=generator) for c in (3 * 4, 3 * 2, 3)))
    objective = FineGrainedDynamicLoss(8, 2, terms={}, bins=4, max_width=1, bins_weight=0.5, width_weight=2.0, regress_weight=3.0)
    losses = objective.loss(out, hr)
    k_true = true_bins(hr, 4)
    k_hat = out.bins.view(1, 3, 4, 5, 5).argmax(2)
    a_hat = out.width.view(1, 3, 2, 5, 5).argmax(2)
    expected_bins = F.cross_entropy(out.bins.view(1, 3, 4, 5, 5).transpose(1, 2), k_true)
    expected_width = F.cross_entropy(out.width.view(1, 3, 2, 5, 5).transpose(1, 2), (k_true - k_hat).abs().clamp(max=1))
    lo, hi = ((k_hat - a_hat) * 64).clamp(0, 256).float(), ((k_hat + a_hat + 1) * 64).clamp(0, 256).float()
    regressed = (lo + torch.sigmoid(out.offset) * (hi - lo)) / 255
    mask = (hr * 255 >= lo) & (hr * 255 < hi)
    expected_regress = torch.sqrt((regressed - hr)[mask] ** 2 + 1e-6).mean() if mask.any() else torch.tensor(0.0)
    torch.testing.assert_close(losses["bins"], expected_bins)
    torch.testing.assert_close(losses["width"], expected_width)
    torch.testing.assert_close(losses["regress"], expected_regress)
    torch.testing.assert_close(losses["total"], 0.5 * expected_bins + 2.0 * expected_width + 3.0 * expected_regress)


def test_training_reduces_loss_with_finite_gradients():
    generator = torch.Generator().manual_seed(0)
    coarse = torch.rand(1, 3, 4, 4, generator=generator)
    hr = F.interpolate(coarse, size=(16, 16), mode="bilinear", align_corners=False)
    inputs = hr + 0.05 * torch.randn(hr.shape, generator=generator)
    totals = train_totals(lambda: FineGrainedDynamicLoss(16, 2, terms={}), inputs, hr, steps=15)
    assert totals[-1] < 0.9 * totals[0]


def test_head_shapes_follow_bins_and_width():
    objective = FineGrainedDynamicLoss(8, 2, terms={}, bins=32, max_width=4, kernel_size=1)
    out = objective(torch.randn(2, 8, 5, 7))
    assert out.bins.shape == (2, 96, 5, 7) and out.width.shape == (2, 15, 5, 7) and out.offset.shape == (2, 3, 5, 7)
    decoded = objective.decode(out)
    assert decoded.shape == (2, 3, 5, 7) and decoded.min() >= 0 and decoded.max() <= 1


@pytest.mark.parametrize("args", [{"bins": 12}, {"bins": 512}, {"max_width": -1}, {"kernel_size": 5}])
def test_bad_options_are_config_errors(args):
    with pytest.raises(ConfigError, match="fine_grained"):
        build_objective(LossConfig(objective="fine_grained", args=args, terms={}), 8, 2)


def test_fit_trains_and_restores_for_inference(tiny_data, tmp_path):
    tiny_data.loss = LossConfig(objective="fine_grained", args={"bins": 8}, terms={})
    result = fit(tiny_data, tmp_path / "run")
    assert math.isfinite(result.final_metrics["val/psnr"])
    net, restored = restore_networks(load_checkpoint(result.last_checkpoint))
    with torch.no_grad():
        sr = restored.decode(restored(net(torch.rand(1, 3, 10, 12))))
    assert sr.shape == (1, 3, 20, 24) and sr.min() >= 0 and sr.max() <= 1


def test_bf16_autocast_and_channels_last_give_float32_terms_close_to_float32():
    torch.manual_seed(0)
    objective = FineGrainedDynamicLoss(8, 2, terms={}).to(memory_format=torch.channels_last)
    features = torch.randn(2, 8, 12, 12).contiguous(memory_format=torch.channels_last)
    hr = torch.rand(2, 3, 12, 12)
    reference = objective.loss(objective(features), hr)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mixed = objective.loss(objective(features), hr)
    for name in ("bins", "width"):
        assert mixed[name].dtype == torch.float32
        torch.testing.assert_close(mixed[name], reference[name], rtol=0.02, atol=0)
