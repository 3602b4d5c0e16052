"""GAN term: discriminator training per GAN type, warm-up, spectral norm, optimiser state, frozen D in G loss."""

import pytest
import torch
from torch.nn.utils import parametrize

from pipeline.errors import ConfigError, PipelineError
from pipeline.objectives.adversarial_loss import (
    GAN_TYPES,
    UNetDiscriminatorSN,
    VGGStyleDiscriminator,
    discriminator_loss,
    generator_loss,
)
from pipeline.objectives.base import Objective
from pipeline.objectives.registry import build_term


def pair(seed: int = 0, size: int = 32, batch: int = 2):
    generator = torch.Generator().manual_seed(seed)
    hr = torch.rand(batch, 3, size, size, generator=generator)
    return hr * 0.5 + 0.25, hr  # (fake, real)


def gan(**options):
    torch.manual_seed(0)
    return build_term("gan", {"channels": 4, "lr": 1e-3, **options})


def test_loss_formulas_on_hand_picked_logits():
    real, fake = torch.tensor([2.0, 0.0]), torch.tensor([0.0, -2.0])
    log2, softplus2 = torch.log(torch.tensor(2.0)).item(), torch.nn.functional.softplus(torch.tensor(2.0)).item()
    # hinge: relu(1 - real) = [0, 1], relu(1 + fake) = [1, 0]
    assert discriminator_loss("hinge", real, fake).item() == pytest.approx(1.0)
    assert generator_loss("hinge", fake).item() == pytest.approx(1.0)
    # lsgan: mean (real - 1)^2 = 1, mean fake^2 = 2
    assert discriminator_loss("lsgan", real, fake).item() == pytest.approx(3.0)
    assert generator_loss("lsgan", fake).item() == pytest.approx(5.0)
    # vanilla: BCE(x, 1) = softplus(-x), BCE(x, 0) = softplus(x)
    expected_d = (softplus2 - 2.0 + log2) / 2 + (log2 + softplus2 - 2.0) / 2
    assert discriminator_loss("vanilla", real, fake).item() == pytest.approx(expected_d, rel=1e-6)
    # relativistic: mean fake = -1, mean real = 1; real - mean fake = [3, 1], fake - mean real = [-1, -3]
    sp = torch.nn.functional.softplus
    d_ra = (sp(-torch.tensor([3.0, 1.0])).mean() + sp(torch.tensor([-1.0, -3.0])).mean()) / 2
    g_ra = (sp(torch.tensor([3.0, 1.0])).mean() + sp(-torch.tensor([-1.0, -3.0])).mean()) / 2
    assert discriminator_loss("relativistic", real, fake).item() == pytest.approx(d_ra.item(), rel=1e-6)
    assert generator_loss("relativistic", fake, real).item() == pytest.approx(g_ra.item(), rel=1e-6)


@pytest.mark.parametrize("discriminator", ["vgg", "unet"])
@pytest.mark.parametrize("gan_type", GAN_TYPES)
def test_aux_steps_lower_the_discriminator_loss(discriminator, gan_type):
    fake, real = pair()
    term = gan(discriminator=discriminator, gan_type=gan_type)

    def d_loss() -> float:
        with torch.no_grad():
            return discriminator_loss(gan_type, term.discriminator(real), term.discriminator(fake)).item()

    before = d_loss()
    logs = [term.aux_step(fake, real, iteration) for iteration in range(3)]
    assert logs[0]["d_loss"] == pytest.approx(before, rel=1e-4)
    assert d_loss() < before
    assert not any(p.requires_grad for p in term.discriminator.parameters())


@pytest.mark.parametrize("discriminator", ["vgg", "unet"])
def test_warmup_gives_exact_zero_and_leaves_d_untouched(discriminator):
    fake, real = pair()
    term = gan(discriminator=discriminator, warmup=3)
    before = {k: v.clone() for k, v in term.discriminator.state_dict().items()}
    sr = fake.clone().requires_grad_(True)
    for iteration in range(3):
        assert term.aux_step(fake, real, iteration) == {}
        assert term(sr, real).item() == 0.0
    after = term.discriminator.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert term.aux_optimizers["discriminator"].state == {}
    assert "d_loss" in term.aux_step(fake, real, 3)
    assert term(sr, real).item() != 0.0


def test_generator_loss_does_not_touch_d_and_gives_finite_gradient():
    fake, real = pair()
    term = gan(gan_type="relativistic")
    sr = fake.clone().requires_grad_(True)
    term(sr, real).backward()
    assert torch.isfinite(sr.grad).all() and sr.grad.abs().sum() > 0
    assert all(p.grad is None for p in term.discriminator.parameters())


def test_unet_discriminator_is_spectrally_normalised():
    torch.manual_seed(0)
    net = UNetDiscriminatorSN(channels=8)
    normalised = [m for m in net.modules() if parametrize.is_parametrized(m, "weight")]
    assert len(normalised) == 8
    assert not parametrize.is_parametrized(net.first) and not parametrize.is_parametrized(net.last)
    image = torch.rand(1, 3, 20, 12)
    for _ in range(3):  # each forward pass in training mode runs one more power iteration
        out = net(image)
    assert out.shape == (1, 1, 20, 12)
    for module in normalised:
        sigma = torch.linalg.matrix_norm(module.weight.detach().flatten(1), ord=2).item()
        assert sigma == pytest.approx(1.0, abs=0.05)


def test_vgg_discriminator_is_patch_size_agnostic():
    torch.manual_seed(0)
    net = VGGStyleDiscriminator(channels=4)
    assert net(torch.rand(2, 3, 32, 32)).shape == net(torch.rand(2, 3, 96, 80)).shape == (2, 1)


def test_optimiser_state_is_checkpointed_with_the_objective():
    fake, real = pair()
    torch.manual_seed(0)
    objective = Objective(8, 2, terms={"l1": 1.0, "gan": {"weight": 0.1, "channels": 8}})
    optimizers = objective.all_aux_optimizers()
    assert list(optimizers) == ["gan/discriminator"]
    params = {id(p) for group in optimizers["gan/discriminator"].param_groups for p in group["params"]}
    assert params == {id(p) for p in objective.terms["gan"].discriminator.parameters()}
    assert set(objective.aux_step(fake, real, 0)) == {"gan/d_loss", "gan/d_real", "gan/d_fake"}
    saved = objective.aux_state_dict()
    assert len(saved["gan/discriminator"]["state"]) == len(params)
    restored = Objective(8, 2, terms={"l1": 1.0, "gan": {"weight": 0.1, "channels": 8}})
    restored.load_aux_state_dict(saved)
    step = restored.all_aux_optimizers()["gan/discriminator"].state_dict()["state"][0]["step"]
    assert step.item() == 1.0
    assert any(key.startswith("terms.gan.discriminator.") for key in objective.state_dict())


def test_bad_options_and_small_patches_are_errors():
    with pytest.raises(ConfigError, match="gan_type"):
        build_term("gan", {"gan_type": "wgan"})
    with pytest.raises(ConfigError, match="discriminator"):
        build_term("gan", {"discriminator": "patchgan"})
    with pytest.raises(ConfigError, match="betas"):
        build_term("gan", {"betas": [0.9, 1.5]})
    with pytest.raises(PipelineError, match="patch_size"):
        gan()(*pair(size=16))
