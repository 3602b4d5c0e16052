"""Second-order gradient loss: hand-computed impulse responses, ramp invariance, sensitivity to blur."""

import pytest
import torch
from torch.nn import functional as F

from pipeline.errors import ConfigError, PipelineError
from pipeline.objectives.registry import build_term

OPERATORS = ["hessian", "laplacian", "grad_magnitude_twice"]


def impulse(size: int = 5) -> torch.Tensor:
    image = torch.zeros(1, 1, size, size)
    image[..., size // 2, size // 2] = 1.0
    return image


def ramp(height: int = 12, width: int = 10, dtype=torch.float64) -> torch.Tensor:
    y, x = torch.meshgrid(torch.arange(height, dtype=dtype), torch.arange(width, dtype=dtype), indexing="ij")
    channels = [0.03 * x + 0.05 * y + 0.1, -0.02 * x + 0.01 * y + 0.7, 0.04 * x + 0.2]
    return torch.stack(channels).unsqueeze(0)


@pytest.mark.parametrize(
    ("operator", "distance", "expected"),
    [
        # I_xx: -2 at the centre, 1 left and right; I_yy alike; I_xy: +-1/4 on the 4 diagonals; 27 values
        ("hessian", "l1", (4 + 4 + 4 * 0.25) / 27),
        ("hessian", "l2", (6 + 6 + 4 * 0.0625) / 27),
        # 5-point Laplacian: -4 at the centre, 1 on its 4 neighbours; 9 values
        ("laplacian", "l1", 8 / 9),
        ("laplacian", "l2", 20 / 9),
    ],
)
def test_impulse_response_matches_hand_computed_value(operator, distance, expected):
    term = build_term("grad2", {"operator": operator, "distance": distance})
    assert term(impulse(), torch.zeros(1, 1, 5, 5)).item() == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("operator", OPERATORS)
def test_affine_ramp_has_no_second_order_gradient(operator):
    term = build_term("grad2", {"operator": operator}).double()
    assert term.second_order(ramp()).abs().max().item() < 1e-12


@pytest.mark.parametrize("operator", ["hessian", "laplacian"])
def test_images_differing_by_an_affine_ramp_have_zero_loss(operator):
    image = torch.rand(2, 3, 12, 10, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    term = build_term("grad2", {"operator": operator}).double()
    assert term(image + ramp(), image).item() < 1e-12


@pytest.mark.parametrize("operator", OPERATORS)
def test_identical_images_give_zero_and_blurred_give_positive(operator):
    image = torch.rand(2, 3, 24, 24, generator=torch.Generator().manual_seed(1))
    kernel = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0])
    kernel = (kernel[:, None] * kernel[None, :] / 256).expand(3, 1, 5, 5)
    blurred = F.conv2d(F.pad(image, (2, 2, 2, 2), mode="replicate"), kernel, groups=3)
    term = build_term("grad2", {"operator": operator})
    assert term(image, image).item() == 0.0
    assert term(blurred, image).item() > 0.01


def test_grad_magnitude_twice_gradient_is_finite_on_flat_regions():
    sr = torch.full((1, 3, 8, 8), 0.5, requires_grad=True)
    build_term("grad2", {"operator": "grad_magnitude_twice"})(sr, torch.rand(1, 3, 8, 8)).backward()
    assert torch.isfinite(sr.grad).all()


def test_options_and_sizes_are_checked():
    with pytest.raises(ConfigError, match="operator"):
        build_term("grad2", {"operator": "sobel"})
    with pytest.raises(ConfigError, match="distance"):
        build_term("grad2", {"distance": "l3"})
    with pytest.raises(PipelineError, match="patch_size"):
        build_term("grad2", {"operator": "grad_magnitude_twice"})(torch.rand(1, 3, 4, 4), torch.rand(1, 3, 4, 4))
