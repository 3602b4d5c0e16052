"""Pixel losses: hand-computed values, aliases, limits and option checks."""

import pytest
import torch

from pipeline.errors import ConfigError
from pipeline.objectives.registry import build_term

# residuals d = SR - HR of 0.5, -0.25, 0 and 2 (HR = 0), shaped like a tiny image batch
SR = torch.tensor([0.5, -0.25, 0.0, 2.0]).view(1, 1, 2, 2)
HR = torch.zeros(1, 1, 2, 2)


@pytest.mark.parametrize(
    ("name", "options", "expected"),
    [
        ("l1", {}, (0.5 + 0.25 + 0 + 2) / 4),
        ("mse", {}, (0.25 + 0.0625 + 0 + 4) / 4),
        ("l2", {}, (0.25 + 0.0625 + 0 + 4) / 4),
        ("huber", {}, (0.125 + 0.03125 + 0 + 1.5) / 4),  # 2 is beyond delta=1: 1 * (2 - 0.5)
        # |d| >= delta=0.5 is linear: 0.5 * (|d| - 0.25)
        ("smooth_l1", {"delta": 0.5}, (0.5 * (0.5 - 0.25) + 0.03125 + 0 + 0.5 * (2 - 0.25)) / 4),
    ],
)
def test_pixel_loss_matches_hand_computed_value(name, options, expected):
    assert build_term(name, options)(SR, HR).item() == pytest.approx(expected, abs=1e-7)


def test_charbonnier_matches_hand_computed_value():
    sr = torch.tensor([0.4, 0.0, -1.2]).view(1, 1, 1, 3)
    # sqrt(0.4^2 + 0.3^2) = 0.5, sqrt(0 + 0.09) = 0.3, sqrt(1.44 + 0.09) = sqrt(1.53)
    expected = (0.5 + 0.3 + 1.53**0.5) / 3
    assert build_term("charbonnier", {"eps": 0.3})(sr, torch.zeros_like(sr)).item() == pytest.approx(expected, abs=1e-7)


def test_charbonnier_tends_to_l1_as_eps_vanishes():
    generator = torch.Generator().manual_seed(0)
    sr, hr = torch.rand(2, 3, 8, 8, generator=generator), torch.rand(2, 3, 8, 8, generator=generator)
    l1 = build_term("l1")(sr, hr).item()
    gaps = [build_term("charbonnier", {"eps": eps})(sr, hr).item() - l1 for eps in (1e-1, 1e-2, 1e-4)]
    assert gaps[0] > gaps[1] > gaps[2] >= 0
    assert gaps[2] < 1e-4


def test_charbonnier_minimum_is_eps():
    image = torch.rand(1, 3, 4, 4, generator=torch.Generator().manual_seed(1))
    assert build_term("charbonnier")(image, image).item() == pytest.approx(1e-3, rel=1e-5)


def test_huber_with_large_delta_is_half_mse():
    generator = torch.Generator().manual_seed(2)
    sr, hr = torch.rand(1, 3, 8, 8, generator=generator), torch.rand(1, 3, 8, 8, generator=generator)
    assert build_term("huber", {"delta": 2.0})(sr, hr).item() == pytest.approx(0.5 * build_term("mse")(sr, hr).item(), rel=1e-6)


@pytest.mark.parametrize(("name", "options"), [("charbonnier", {"eps": 0.0}), ("huber", {"delta": -1.0}), ("l1", {"eps": 1.0})])
def test_bad_options_are_config_errors(name, options):
    with pytest.raises(ConfigError, match=name):
        build_term(name, options)
