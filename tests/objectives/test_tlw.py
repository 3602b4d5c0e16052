"""Trainable loss weights: k schedule, EM separation of parameters, distances, training."""

import math

import pytest
import torch
import torch.nn.functional as F

from pipeline.config import LossConfig
from pipeline.errors import ConfigError, PipelineError
from pipeline.objectives.fixedsum import fixed_sum
from pipeline.objectives.registry import build_objective
from pipeline.objectives.tlw_distance import MultiScaleDistance, UnlearnedVGGDistance
from pipeline.objectives.tlw_loss import TrainableLossWeights
from pipeline.train.checkpoint import load_checkpoint
from pipeline.train.loop import fit
from tests.conftest import CrashAtValidation
from tests.objectives.tiny_training import train_totals


def small_tlw(**args):
    defaults = {"features": 8, "depth": 3, "lr": 1e-2, "variant": "deterministic"}
    return TrainableLossWeights(8, 2, terms={}, total_iterations=100, **{**defaults, **args})


def batch(seed=0, size=16):
    generator = torch.Generator().manual_seed(seed)
    coarse = torch.rand(2, 3, size // 4, size // 4, generator=generator)
    hr = F.interpolate(coarse, size=(size, size), mode="bilinear", align_corners=False)
    sr = (hr + 0.1 * torch.randn(hr.shape, generator=generator)).clamp(0, 1)
    return sr, hr


def snapshot(module):
    return {name: value.detach().clone() for name, value in module.state_dict().items()}


def test_k_schedule_values():
    objective = TrainableLossWeights(8, 2, terms={}, total_iterations=300, k_start=0.3, k_span=0.6, k_tau=1 / 3)
    assert objective.k_at(0) == pytest.approx(0.3)
    assert objective.k_at(100) == pytest.approx(0.3 + 0.6 * (1 - math.exp(-1)))
    assert objective.k_at(300) == pytest.approx(0.3 + 0.6 * (1 - math.exp(-3)))
    values = [objective.k_at(t) for t in range(0, 3000, 100)]
    assert all(a < b for a, b in zip(values, values[1:])) and values[-1] < 0.9


def test_default_is_the_authors_stochastic_variant_and_k_schedule():
    """Their train.py: ``k = 0.3 + 0.6 (1 - exp(-epoch / 100))`` for epochs 0..99, TLWLossStochastic."""
    objective = TrainableLossWeights(8, 2, terms={}, total_iterations=600)
    assert objective.variant == "stochastic" and objective.samples == 3
    for epoch in (0, 10, 50, 99, 100):
        assert objective.k_at(epoch * 6) == pytest.approx(0.3 + 0.6 * (1 - math.exp(-epoch / 100)), abs=1e-12)
    assert objective.k_at(600) == pytest.approx(0.6793, abs=1e-4)


def test_e_step_changes_only_weighting_net():
    torch.manual_seed(0)
    objective = small_tlw()
    sr, hr = batch()
    head_before, weighting_before = snapshot(objective.head), snapshot(objective.weighting)
    logs = objective.aux_step(sr, hr, 0)
    assert all(torch.equal(head_before[n], v) for n, v in objective.head.state_dict().items())
    assert all(p.grad is None for p in objective.head.parameters())
    changed = [n for n, v in objective.weighting.state_dict().items() if not torch.equal(weighting_before[n], v)]
    assert {n for n, _ in objective.weighting.named_parameters()} <= set(changed)
    assert logs["tlw/k"] == pytest.approx(0.3) and logs["tlw/w_mean"] == pytest.approx(0.3, abs=1e-5)
    assert logs["tlw/w_std"] > 0 and math.isfinite(logs["tlw/criterion"])


def test_m_step_gives_no_gradient_to_weighting_net():
    torch.manual_seed(0)
    objective = small_tlw()
    _, hr = batch()
    features = torch.randn(2, 8, 16, 16)
    losses = objective.loss(objective(features), hr, 0)
    losses["total"].backward()
    assert all(p.grad is None for p in objective.weighting.parameters())
    assert all(torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0 for p in objective.head.parameters())


@pytest.mark.parametrize("base", ["l1", "l2"])
def test_m_step_is_weighted_pixel_loss(base):
    torch.manual_seed(0)
    objective = small_tlw(base=base, weight=2.0)
    sr, hr = batch()
    with torch.no_grad():
        w = fixed_sum(objective.weighting(hr, sr), objective.k_at(40))
    error = (sr - hr).abs() if base == "l1" else (sr - hr) ** 2
    torch.testing.assert_close(objective.loss(sr, hr, 40)["total"], 2.0 * (w * error).mean())


def test_sr_parameters_exclude_weighting_net_but_state_dict_holds_it():
    objective = small_tlw()
    sr_ids = {id(p) for p in objective.sr_parameters()}
    assert not sr_ids & {id(p) for p in objective.weighting.parameters()}
    assert any(key.startswith("weighting.") for key in objective.state_dict())
    assert set(objective.all_aux_optimizers()) == {"weighting"}


def test_e_steps_lower_the_criterion():
    torch.manual_seed(0)
    objective = small_tlw(lr=3e-2)
    sr, hr = batch(1)
    criteria = [objective.aux_step(sr, hr, 0)["tlw/criterion"] for _ in range(15)]
    assert criteria[-1] < criteria[0]


def test_stochastic_variant_is_seeded_and_trains_the_head():
    sr, hr = batch()
    values = []
    for _ in range(2):
        torch.manual_seed(0)
        objective = small_tlw(variant="stochastic", samples=3, seed=7)
        out = objective(torch.randn(2, 8, 16, 16))
        objective.aux_step(sr, hr, 0)
        e_step_grads = [p.grad.clone() for p in objective.weighting.parameters()]
        losses = objective.loss(out, hr, 0)
        losses["total"].backward()
        assert all(torch.equal(g, p.grad) for g, p in zip(e_step_grads, objective.weighting.parameters()))
        assert all(torch.isfinite(p.grad).all() for p in objective.head.parameters())
        values.append(losses["total"].item())
    assert values[0] == values[1] and values[0] > 0


@pytest.mark.parametrize("args", [{}, {"variant": "stochastic"}, {"base": "l2"}])
def test_training_reduces_loss_with_finite_gradients(args):
    sr, hr = batch()
    totals = train_totals(
        lambda: TrainableLossWeights(16, 2, terms={}, total_iterations=100, features=8, depth=3, **args), sr, hr, steps=10)
    assert totals[-1] < 0.5 * totals[0]


def test_multiscale_distance_properties():
    sr, hr = batch(2)
    distance = MultiScaleDistance()
    assert torch.allclose(distance(hr, hr), torch.zeros(2), atol=1e-6)
    near, far = distance(hr + 0.02 * (sr - hr), hr), distance(sr, hr)
    assert (near > 0).all() and (far > near).all()
    torch.testing.assert_close(distance(sr, hr), distance(hr, sr))


def test_unlearned_vgg_distance_arithmetic(random_vgg_hub):
    """Random VGG weights (the hub fixture): checks plumbing and the formula's invariants, never a reported number."""
    distance = UnlearnedVGGDistance("vgg16", None)
    sr, hr = batch(2, size=32)
    assert torch.allclose(distance(hr, hr), torch.zeros(2), atol=1e-6)
    torch.testing.assert_close(distance(sr, hr), distance(hr, sr))
    assert (distance(sr, hr) > 0).all()
    assert set(distance.features(sr)) == {"relu1_2", "relu2_2", "relu3_3", "relu4_3", "relu5_3"}
    objective = small_tlw(distance="vgg")
    assert math.isfinite(objective.aux_step(sr, hr, 0)["tlw/criterion"])
    assert not any(key.startswith("distance") for key in objective.state_dict())


def test_vgg_distance_is_needed_only_for_training(tmp_path):
    objective = small_tlw(distance="vgg", vgg_weights=tmp_path / "missing.pth")
    sr, hr = batch()
    objective.eval()
    assert objective.decode(objective(torch.randn(2, 8, 16, 16))).shape == (2, 3, 16, 16)
    with pytest.raises(PipelineError, match="vgg_weights"):
        objective.aux_step(sr, hr, 0)


def test_fit_resumes_bitwise_with_weighting_net_and_its_optimiser(tiny_data, tmp_path):
    tiny_data.loss = LossConfig(objective="tlw", args={"variant": "stochastic", "features": 8, "depth": 3}, terms={})
    whole = fit(tiny_data, tmp_path / "whole")
    with pytest.raises(KeyboardInterrupt):
        fit(tiny_data, tmp_path / "split", [CrashAtValidation(6)])
    resumed = fit(tiny_data, tmp_path / "split", resume=tmp_path / "split" / "checkpoints" / "last.pt")
    a, b = load_checkpoint(whole.last_checkpoint), load_checkpoint(resumed.last_checkpoint)
    assert any(key.startswith("weighting.") for key in a["objective"])
    for key in a["objective"]:
        assert torch.equal(a["objective"][key], b["objective"][key]), key
    assert a["aux"]["weighting"]["state"][0]["step"] == 12
    assert whole.final_metrics == resumed.final_metrics


@pytest.mark.parametrize(
    "args", [{"k_start": 0.5, "k_span": 0.6}, {"variant": "bayes"}, {"depth": 1}, {"distance": "ssim"}, {"samples": 0}]
)
def test_bad_options_are_config_errors(args):
    with pytest.raises(ConfigError, match="tlw"):
        build_objective(LossConfig(objective="tlw", args=args, terms={}), 8, 2)
