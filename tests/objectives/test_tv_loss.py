"""Total variation: hand-computed values, zero on constants, finite gradients."""

import pytest
import torch

from pipeline.errors import ConfigError
from pipeline.objectives.registry import build_term

CHECKER = torch.tensor([[0.0, 1.0], [1.0, 0.0]]).view(1, 1, 2, 2)


@pytest.mark.parametrize(("variant", "expected"), [("anisotropic", 2.0), ("isotropic", 2.0**0.5)])
def test_tv_of_a_2x2_checkerboard(variant, expected):
    # dx = [1, -1], dy = [1, -1]: anisotropic mean|dx| + mean|dy| = 2; isotropic sqrt(1 + 1) at (0, 0)
    assert build_term("tv", {"variant": variant})(CHECKER, CHECKER).item() == pytest.approx(expected)


def test_anisotropic_tv_of_a_ramp_is_its_slope_sum():
    y, x = torch.meshgrid(torch.arange(6.0), torch.arange(5.0), indexing="ij")
    ramp = (0.1 * x - 0.03 * y).expand(2, 3, 6, 5)
    assert build_term("tv")(ramp, ramp).item() == pytest.approx(0.13, abs=1e-6)


@pytest.mark.parametrize("variant", ["anisotropic", "isotropic"])
def test_tv_is_zero_with_finite_gradient_on_a_constant_image(variant):
    image = torch.full((2, 3, 8, 8), 0.4, requires_grad=True)
    value = build_term("tv", {"variant": variant})(image, image.detach())
    value.backward()
    assert value.item() == 0.0
    assert torch.isfinite(image.grad).all()


def test_unknown_variant_is_a_config_error():
    with pytest.raises(ConfigError, match="variant"):
        build_term("tv", {"variant": "l2"})
