"""Weight EMA: the averaging formula, swapping the average in and out, counters, state round trip."""

from __future__ import annotations

import torch
from torch import nn

from pipeline.train.ema import ModelEma


def small_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))


def test_update_is_the_exponential_average_and_copies_counters():
    net = small_net()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    ema = ModelEma({"net": net}, decay=0.9)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(1.0)
    net.train()(torch.randn(2, 3, 8, 8))  # moves BN running stats and counter
    ema.update()
    shadow = ema.state_dict()["net"]
    for key, value in net.state_dict().items():
        if value.is_floating_point():
            torch.testing.assert_close(shadow[key], 0.9 * before[key] + 0.1 * value)
        else:
            assert torch.equal(shadow[key], value)
    assert shadow["1.num_batches_tracked"].item() == 1


def test_applied_swaps_the_average_in_and_restores_the_trained_weights():
    net = small_net()
    ema = ModelEma({"net": net}, decay=0.5)
    with torch.no_grad():
        net[0].weight.mul_(3)
    trained = net[0].weight.clone()
    ema.update()
    with ema.applied():
        torch.testing.assert_close(net[0].weight, ema.state_dict()["net"]["0.weight"])
        assert not torch.equal(net[0].weight, trained)
    assert torch.equal(net[0].weight, trained)


def test_state_round_trip():
    net = small_net()
    ema = ModelEma({"net": net}, decay=0.5)
    saved = {name: {k: v * 2 for k, v in tensors.items()} for name, tensors in ema.state_dict().items()}
    other = ModelEma({"net": small_net()}, decay=0.5)
    other.load_state_dict(saved)
    for key, value in saved["net"].items():
        assert torch.equal(other.state_dict()["net"][key], value)
