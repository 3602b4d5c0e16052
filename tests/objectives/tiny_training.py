"""A tiny conv net trained with an objective's head on one fixed batch, for "the loss falls" tests."""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor, nn

from pipeline.objectives.base import Objective


def train_totals(make_objective: Callable[[], Objective], inputs: Tensor, hr: Tensor, steps: int,
                 seed: int = 0) -> list[float]:
    """Total loss per step; asserts every gradient of the net and the head is finite."""
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 16, 3, padding=1))
    objective = make_objective()
    trained = [*net.parameters(), *objective.sr_parameters()]
    optimizer = torch.optim.Adam(trained, lr=1e-2)
    totals = []
    for iteration in range(steps):
        out = objective(net(inputs))
        objective.aux_step(objective.decode(out).detach(), hr, iteration)
        total = objective.loss(out, hr, iteration)["total"]
        optimizer.zero_grad()
        total.backward()
        assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in trained)
        optimizer.step()
        totals.append(total.item())
    return totals
