"""Training FLOPs per step, measured once per objective and network: the unit of a compute budget.

``torch.utils.flop_counter.FlopCounterMode`` counts the floating-point operations of the matrix
products and convolutions a step dispatches (2 per multiply-accumulate; elementwise operations,
normalisations and the optimizer update are not counted, which is the usual convention of training
FLOP counts, e.g. Kaplan et al. 2020). One step is what ``pipeline.train.loop.train_step`` runs: the
objective's ``aux_step`` on the decoded SR (TLW's weighting network, a GAN's discriminator), the
forward of network, head and loss, and the backward of the total loss. The count depends only on
the shapes, so it is the same on every machine; it is taken on copies, leaving ``net`` and
``objective`` (and the objective's auxiliary state) untouched.
"""

from __future__ import annotations

import copy

import torch
from torch import Tensor, nn
from torch.utils.flop_counter import FlopCounterMode

from pipeline.objectives.base import Objective


def training_step_flops(net: nn.Module, objective: Objective, lr: Tensor, hr: Tensor) -> int:
    """FLOPs of one training step on the batch ``(lr, hr)`` (see the module docstring)."""
    net, objective = copy.deepcopy(net).train(), copy.deepcopy(objective).train()
    with FlopCounterMode(display=False) as counter:
        out = objective(net(lr))
        if objective.has_aux_step:
            with torch.no_grad():
                sr = objective.decode(out).float()
            objective.aux_step(sr, hr, 0)
        objective.loss(out, hr, 0)["total"].backward()
    return int(counter.get_total_flops())


def iterations_for_budget(budget_flops: float, flops_per_step: int) -> int:
    """``floor(budget / flops_per_step)``, at least 1: the iterations a FLOP budget buys."""
    return max(1, int(budget_flops // flops_per_step))
