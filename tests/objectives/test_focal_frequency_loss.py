"""Focal frequency loss: Parseval identities, spectrum-weight range, zero on identical images."""

import pytest
import torch

from pipeline.errors import ConfigError, PipelineError
from pipeline.objectives.focal_frequency_loss import FocalFrequencyLoss
from pipeline.objectives.registry import build_term


def pair(seed: int, size: int = 16):
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(2, 3, size, size, generator=generator), torch.rand(2, 3, size, size, generator=generator)


@pytest.mark.parametrize("patch_factor", [1, 2, 4])
def test_with_alpha_zero_it_is_the_mse_by_parseval(patch_factor):
    # alpha = 0 makes every weight 1; the orthonormal DFT preserves the squared norm of each patch
    sr, hr = pair(0)
    value = build_term("ffl", {"alpha": 0.0, "patch_factor": patch_factor})(sr, hr)
    assert value.item() == pytest.approx(torch.mean((sr - hr) ** 2).item(), rel=1e-5)


def test_focal_weights_lie_in_unit_interval_with_one_peak_per_patch_and_channel():
    sr, hr = pair(1)
    term = FocalFrequencyLoss(patch_factor=2)
    difference = term.spectrum(sr) - term.spectrum(hr)
    weight = term.spectrum_weight(difference.real**2 + difference.imag**2)
    assert weight.shape == (2, 2, 2, 3, 8, 8)
    assert weight.min() >= 0
    assert torch.allclose(weight.amax(dim=(-2, -1)), torch.ones(2, 2, 2, 3))
    assert not weight.requires_grad


@pytest.mark.parametrize("options", [{}, {"alpha": 2.0, "log_matrix": True}, {"patch_factor": 4}])
def test_zero_for_identical_images_positive_otherwise_and_at_most_the_mse(options):
    sr, hr = pair(2)
    term = build_term("ffl", options)
    assert term(hr, hr).item() == 0.0
    assert 0 < term(sr, hr).item() <= torch.mean((sr - hr) ** 2).item() * (1 + 1e-6)


def test_gradient_is_finite_for_identical_images():
    hr = pair(3)[1]
    sr = hr.clone().requires_grad_(True)
    build_term("ffl")(sr, hr).backward()
    assert torch.isfinite(sr.grad).all() and sr.grad.abs().max() == 0


def test_options_and_sizes_are_checked():
    with pytest.raises(ConfigError, match="patch_factor"):
        build_term("ffl", {"patch_factor": 0})
    with pytest.raises(PipelineError, match="patch_factor"):
        build_term("ffl", {"patch_factor": 8})(torch.rand(1, 3, 4, 4), torch.rand(1, 3, 4, 4))
