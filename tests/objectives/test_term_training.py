"""Every term of this part: finite gradients w.r.t. SR, and a tiny conv net trained on it lowers it."""

import pytest
import torch
from torch import nn

from pipeline.objectives.registry import build_term

TERMS = [
    ("l1", {}), ("mse", {}), ("charbonnier", {}), ("huber", {"delta": 0.1}),
    ("tv", {}), ("tv", {"variant": "isotropic"}),
    ("grad2", {}), ("grad2", {"operator": "laplacian", "distance": "l2"}), ("grad2", {"operator": "grad_magnitude_twice"}),
    ("ldl", {}), ("ffl", {}), ("ffl", {"patch_factor": 2, "log_matrix": True}),
    ("perceptual", {}), ("texture", {}),
    ("gan", {"channels": 4}), ("gan", {"channels": 4, "discriminator": "unet", "gan_type": "hinge"}),
]
IDS = [f"{name}-{'-'.join(map(str, options.values()))}" if options else name for name, options in TERMS]
VGG_TERMS = ("perceptual", "texture")


def make_term(name: str, options: dict, request: pytest.FixtureRequest):
    if name in VGG_TERMS:
        request.getfixturevalue("random_vgg_hub")
    torch.manual_seed(0)
    return build_term(name, options)


def images(name: str, seed: int = 0):
    """A (degraded, HR) pair; 16-pixel sides for VGG terms (fast on CPU), 32 for the rest (the VGG discriminator's minimum)."""
    size = 16 if name in VGG_TERMS else 32
    generator = torch.Generator().manual_seed(seed)
    hr = torch.rand(2, 3, size, size, generator=generator)
    return (hr + 0.1 * torch.randn(2, 3, size, size, generator=generator)).clamp(0, 1), hr


@pytest.mark.parametrize(("name", "options"), TERMS, ids=IDS)
@pytest.mark.parametrize("identical", [False, True], ids=["different", "identical"])
def test_gradient_wrt_sr_is_finite(name, options, identical, request):
    term = make_term(name, options, request)
    degraded, hr = images(name)
    sr = (hr if identical else degraded).clone().requires_grad_(True)
    value = term(sr, hr)
    value.backward()
    assert torch.isfinite(value) and torch.isfinite(sr.grad).all()


@pytest.mark.parametrize(("name", "options"), TERMS, ids=IDS)
def test_training_a_tiny_net_lowers_the_term(name, options, request):
    term = make_term(name, options, request)
    degraded, hr = images(name, seed=1)
    net = nn.Conv2d(3, 3, 3, padding=1)
    optimizer = torch.optim.Adam(net.parameters(), lr=3e-3)
    with torch.no_grad():
        before = term(net(degraded), hr).item()
    for _ in range(8):
        optimizer.zero_grad()
        term(net(degraded), hr).backward()
        optimizer.step()
    with torch.no_grad():
        after = term(net(degraded), hr).item()
    assert after < before


def test_has_aux_step_is_true_exactly_for_objectives_with_their_own_update():
    """The trainer skips the per-step decode when ``has_aux_step`` is False, so it must not miss one."""
    from pipeline.config import LossConfig
    from pipeline.objectives.registry import build_objective

    def has(objective: str, terms: dict) -> bool:
        return build_objective(LossConfig(objective=objective, terms=terms), 8, 2).has_aux_step

    assert not has("regression", {"l1": 1.0, "grad2": 0.1})
    assert not has("cs", {})
    assert has("regression", {"l1": 1.0, "gan": 0.01})
    assert has("tlw", {})
