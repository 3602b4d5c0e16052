"""Ordered class-head initialisation (CS, FCS high branch, fine-grained bins), FCS balance, decode choice."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from pipeline.config import LossConfig, SweepConfig
from pipeline.errors import ConfigError
from pipeline.objectives.class_heads import LEVELS, decode_classes
from pipeline.objectives.cross_entropy_loss import CrossEntropySR, FrequencyCrossEntropySR, SplitOutput
from pipeline.objectives.fine_grained_loss import FineGrainedDynamicLoss
from pipeline.objectives.ordered_head import ordered_init_
from pipeline.objectives.registry import build_objective
from pipeline.tune.space import SearchSpace, TrialChoice

FEATURES = 32


def features(seed=0, size=6):
    """Features whose read-outs stay well inside the value range (PyTorch's init: |b| < 1 / sqrt(32))."""
    generator = torch.Generator().manual_seed(seed)
    return 0.1 * torch.randn(2, FEATURES, size, size, generator=generator, dtype=torch.float64)


def assert_gaussian_around(logits, values, centre, sigma, atol=1e-5):
    """``softmax_k logits`` is ``N(centre, sigma^2)`` discretised on ``values``, per pixel and channel.

    ``atol`` allows for float32 head weights: CS logits reach thousands, so they carry ~1e-3 rounding.
    """
    b, _, h, w = logits.shape
    grouped = logits.double().view(b, 3, values.numel(), h, w)
    expected = -(values.double().view(1, 1, -1, 1, 1) - centre.double().unsqueeze(2)).square() / (2 * sigma**2)
    torch.testing.assert_close(grouped.log_softmax(dim=2), expected.log_softmax(dim=2), rtol=1e-5, atol=atol)


def test_ordered_init_is_a_gaussian_around_the_next_conv_pytorch_would_draw():
    values = torch.linspace(0, 1, 11)
    head = nn.Conv2d(FEATURES, 3 * 11, 3, padding=1)
    torch.manual_seed(5)
    ordered_init_(head.double(), values, sigma=0.1)
    torch.manual_seed(5)
    readout = nn.Conv2d(FEATURES, 3, 3, padding=1).double()
    x = features()
    with torch.no_grad():
        assert_gaussian_around(head(x), values, 0.5 + readout(x), sigma=0.1)


def test_cs_ordered_head_decodes_to_its_affine_readout_at_step_0():
    torch.manual_seed(0)
    objective = CrossEntropySR(FEATURES, 2, terms={}, init_sigma=2.0).double()
    x, y = features(1), features(2)
    with torch.no_grad():
        rx, ry = objective.predict(x), objective.predict(y)
        # the decode is affine in the features (a linear read-out), inside the range, and the softmax is a
        # Gaussian of 2 levels around it
        torch.testing.assert_close(objective.predict(0.25 * x + 0.75 * y), 0.25 * rx + 0.75 * ry, rtol=0, atol=1e-5)
        assert 0.2 < rx.min() and rx.max() < 0.8 and rx.std() > 0.02
        assert_gaussian_around(objective(x).logits(), objective.levels, rx, sigma=2 / 255, atol=2e-3)
        for mode in ("annealed", "argmax"):
            objective.use_decode(mode)
            tolerance = 0.5 / 255 + 1e-6 if mode == "argmax" else 1e-5
            assert (objective.predict(x) - rx).abs().max() <= tolerance


def test_fcs_ordered_high_branch_decodes_to_its_affine_readout_at_step_0():
    torch.manual_seed(0)
    objective = FrequencyCrossEntropySR(FEATURES, 2, terms={}, tau=0.5).double()
    x, y = features(1), features(2)
    with torch.no_grad():
        high = [decode_classes(objective(z).high.logits(), objective.quantizer.values, "expectation") for z in (x, y)]
        mixed = decode_classes(objective(0.5 * x + 0.5 * y).high.logits(), objective.quantizer.values,
                               "expectation")
        torch.testing.assert_close(mixed, 0.5 * high[0] + 0.5 * high[1], rtol=0, atol=1e-5)
        assert high[0].abs().max() < 0.4 and high[0].std() > 0.02
        assert_gaussian_around(objective(x).high.logits(), objective.quantizer.values, high[0], sigma=1 / 255,
                               atol=2e-3)
        out = objective(x)
        torch.testing.assert_close(objective.decode(out), out.low + high[0])


def test_fine_grained_ordered_bins_decode_to_their_affine_readout_at_step_0():
    torch.manual_seed(0)
    objective = FineGrainedDynamicLoss(FEATURES, 2, terms={}, bins=16, decode="expectation").double()
    x, y = features(1), features(2)
    with torch.no_grad():
        rx, ry = objective.predict(x), objective.predict(y)
        torch.testing.assert_close(objective.predict(0.5 * x + 0.5 * y), 0.5 * rx + 0.5 * ry, rtol=0, atol=1e-5)
        assert_gaussian_around(objective(x).bins, objective.centres, rx, sigma=16 / 255)
        # the paper's decode starts in the bin nearest the read-out
        objective.use_decode("anchor")
        out = objective(x)
        predicted_bin = out.bins.view(2, 3, 16, 6, 6).max(dim=2).indices
        expected_bin = (objective.centres.view(1, 1, -1, 1, 1) - rx.unsqueeze(2)).abs().min(dim=2).indices
        assert torch.equal(predicted_bin, expected_bin)


@pytest.mark.parametrize("objective, args, head", [
    ("cs", {}, lambda o: o.head),
    ("fcs", {}, lambda o: o.head.high),
    ("fine_grained", {}, lambda o: o.head.bins),
])
def test_plain_init_is_pytorchs_default_and_ordered_is_not(objective, args, head):
    def class_weights(init):
        torch.manual_seed(3)
        built = build_objective(LossConfig(objective=objective, args={**args, "init": init}, terms={}), FEATURES, 2)
        conv = head(built)
        return conv, conv.weight.detach().flatten(1)

    plain_conv, plain = class_weights("plain")
    _, ordered = class_weights("ordered")
    # every ordered class weight is a multiple of one read-out direction per channel; plain ones are not
    directions = ordered.view(3, -1, ordered.shape[1])
    unit = F.normalize(directions[:, -1], dim=1).unsqueeze(1)
    assert torch.allclose((F.normalize(directions, dim=2) * unit).sum(dim=2).abs(), torch.ones(1), atol=1e-5)
    plain_directions = F.normalize(plain.view(3, -1, plain.shape[1]), dim=2)
    assert (plain_directions * plain_directions[:, -1:]).sum(dim=2).abs().median() < 0.9
    bound = 1 / math.sqrt(plain_conv.in_channels * plain_conv.kernel_size[0] * plain_conv.kernel_size[1])
    assert plain.abs().max() <= bound  # PyTorch's kaiming-uniform(a = sqrt 5) range


def test_fcs_balanced_low_weight_is_one_over_two_sigma_squared():
    objective = FrequencyCrossEntropySR(FEATURES, 2, terms={}, tau=0.5, init_sigma=2.0)
    sigma = 2.0 * 2 * 0.5 / 255
    assert objective.low_weight == pytest.approx(1 / (2 * sigma**2))
    assert FrequencyCrossEntropySR(FEATURES, 2, terms={}, low_weight=1.0).low_weight == 1.0  # the paper's sum
    torch.manual_seed(0)
    hr = torch.rand(1, 3, 12, 12)
    out = SplitOutput(torch.rand(1, 3, 12, 12), torch.randn(1, 3 * LEVELS, 12, 12))
    losses = objective.loss(out, hr)
    torch.testing.assert_close(losses["total"], objective.low_weight * losses["low"] + losses["high"])


def test_cross_entropy_of_an_ordered_head_is_l2_on_the_readout_with_weight_one_over_two_sigma_squared():
    torch.manual_seed(0)
    objective = CrossEntropySR(FEATURES, 2, terms={}, init_sigma=3.0).double()
    x = features(4)
    hr = torch.rand(2, 3, 6, 6, dtype=torch.float64) * 0.4 + 0.3
    with torch.no_grad():
        readout = objective.predict(x)
        ce = objective.loss(objective(x), hr)["ce"]
    target = torch.round(hr * 255) / 255
    sigma = 3.0 / 255
    normaliser = math.log(math.sqrt(2 * math.pi) * sigma * 255)  # log sum_k exp(-(v_k - r)^2 / 2s^2), interior
    expected = ((target - readout).square() / (2 * sigma**2)).mean() + normaliser
    torch.testing.assert_close(ce, expected, rtol=1e-6, atol=0)


def test_fine_grained_expectation_decode_is_the_softmax_mean_of_bin_centres():
    torch.manual_seed(0)
    objective = FineGrainedDynamicLoss(FEATURES, 2, terms={}, bins=8, decode="expectation")
    out = objective(torch.randn(1, FEATURES, 4, 4))
    centres = (torch.arange(8) + 0.5) * 32 / 255
    probs = out.bins.view(1, 3, 8, 4, 4).softmax(dim=2)
    torch.testing.assert_close(objective.decode(out), (probs * centres.view(1, 1, 8, 1, 1)).sum(dim=2))


def test_one_objective_decodes_under_each_listed_decode_with_the_same_loss():
    torch.manual_seed(0)
    objective = FineGrainedDynamicLoss(FEATURES, 2, terms={}, decode="anchor")
    assert objective.decodes == ("anchor", "expectation")
    out = objective(features().float())
    hr = torch.rand(2, 3, 6, 6)
    anchor, loss = objective.decode(out), objective.loss(out, hr)["total"]
    objective.use_decode("expectation")
    assert not torch.equal(objective.decode(out), anchor)
    torch.testing.assert_close(objective.loss(out, hr)["total"], loss)
    with pytest.raises(ConfigError, match="'median' is not one of this objective's decodes: anchor, expectation"):
        objective.use_decode("median")


@pytest.mark.parametrize("objective, args", [
    ("cs", {"init": "random"}), ("cs", {"init_sigma": 0}), ("fcs", {"low_weight": "auto"}),
    ("fine_grained", {"decode": "argmax"}), ("fine_grained", {"init_sigma": -1}),
])
def test_bad_init_decode_and_weight_options_are_config_errors(objective, args):
    with pytest.raises(ConfigError):
        build_objective(LossConfig(objective=objective, args=args, terms={}), FEATURES, 2)


def test_a_sweep_can_search_the_fcs_low_weight_and_balanced_is_255_squared_over_two():
    objectives = {"fcs": {"loss": {"objective": "fcs", "args": {"tau": 0.5, "low_weight": "balanced"}, "terms": {}}}}
    space = SearchSpace(SweepConfig(objectives=objectives, space={"fcs": {"loss.args.low_weight": {"grid": [10.0]}}}))
    fragment = space.fragment(TrialChoice("fcs", {"loss.args.low_weight": 10.0}, 0))
    built = build_objective(LossConfig(**fragment["loss"]), FEATURES, 2)
    assert built.low_weight == 10.0
    default = build_objective(LossConfig(**objectives["fcs"]["loss"]), FEATURES, 2)
    assert default.low_weight == pytest.approx(255**2 / 2)


def test_cs_switches_decodes_but_refuses_argmax_while_image_terms_train():
    objective = CrossEntropySR(FEATURES, 2, terms={"l1": 1.0})
    objective.use_decode("annealed")
    assert objective.decode_mode == "annealed"
    with pytest.raises(ConfigError, match="not differentiable"):
        objective.use_decode("argmax")
    plain = CrossEntropySR(FEATURES, 2, terms={})
    plain.use_decode("argmax")
    logits = torch.randn(1, 3 * LEVELS, 2, 2)
    assert torch.equal(plain.decode(logits), decode_classes(logits, plain.levels, "argmax"))
