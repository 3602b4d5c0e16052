"""The training FLOP count of L1 on EDSR equals a hand count from the layer shapes."""

from __future__ import annotations

import torch

from pipeline.config import LossConfig
from pipeline.models.registry import build_model
from pipeline.objectives.registry import build_objective
from pipeline.train.flops import iterations_for_budget, training_step_flops

BATCH, HEIGHT, WIDTH, FEATS, BLOCKS = 2, 12, 10, 8, 2


def _conv(c_in: int, c_out: int, pixels: int, kernel: int = 3) -> int:
    """Forward FLOPs of a convolution: 2 per multiply-accumulate, per output pixel of the batch."""
    return 2 * c_in * c_out * kernel * kernel * pixels * BATCH


def test_l1_on_edsr_matches_the_hand_count():
    torch.manual_seed(0)
    net = build_model("edsr", 2, {"n_blocks": BLOCKS, "n_feats": FEATS})
    objective = build_objective(LossConfig(terms={"l1": 1.0}), FEATS, 2)
    lr = torch.rand(BATCH, 3, HEIGHT, WIDTH)
    hr = torch.rand(BATCH, 3, 2 * HEIGHT, 2 * WIDTH)
    low, high = HEIGHT * WIDTH, 4 * HEIGHT * WIDTH
    # forward: extract, 2 convs per block, body tail, x2 upsampler conv (to 4 * FEATS maps), RGB head
    first = _conv(3, FEATS, low)
    middle = (2 * BLOCKS + 1) * _conv(FEATS, FEATS, low) + _conv(FEATS, 4 * FEATS, low) + _conv(FEATS, 3, high)
    forward = first + middle
    # backward: weight gradients of every conv (= its forward) and input gradients of all but the
    # first (the LR image needs none); the L1 loss itself has no matrix products
    backward = first + 2 * middle
    assert training_step_flops(net, objective, lr, hr) == forward + backward
    assert all(parameter.grad is None for parameter in net.parameters())  # counted on a copy


def test_a_budget_buys_whole_steps():
    assert iterations_for_budget(10_000, 3_000) == 3
    assert iterations_for_budget(1, 3_000) == 1


def test_tlw_counts_its_weighting_network_update(monkeypatch):
    torch.manual_seed(0)
    net = build_model("edsr", 2, {"n_blocks": BLOCKS, "n_feats": FEATS})
    objective = build_objective(LossConfig(objective="tlw", args={"features": 8, "variant": "stochastic"}, terms={}),
                                FEATS, 2)
    lr, hr = torch.rand(BATCH, 3, HEIGHT, WIDTH), torch.rand(BATCH, 3, 2 * HEIGHT, 2 * WIDTH)
    state = {name: value.clone() for name, value in objective.state_dict().items()}
    with_aux = training_step_flops(net, objective, lr, hr)
    assert all(torch.equal(value, state[name]) for name, value in objective.state_dict().items())
    monkeypatch.setattr(type(objective), "has_aux_step", property(lambda self: False))
    assert with_aux > training_step_flops(net, objective, lr, hr) > 0
