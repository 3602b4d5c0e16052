"""Training FLOPs per step, measured once per objective and network: the unit of a compute budget.

``torch.utils.flop_counter.FlopCounterMode`` counts the floating-point operations of the matrix
products and convolutions a step dispatches (2 per multiply-accumulate; elementwise operations,
normalisations and the optimizer update are not counted, which is the usual convention of training
FLOP counts, e.g. Kaplan et al. 2020). One step is what ``pipeline.train.loop.train_step`` runs: the
objective's ``aux_step`` on the decoded SR (TLW's weighting network, a GAN's discriminator), the
forward of network, head and loss, and the backward of the total loss. The count depends only on
the shapes, so it is the same on every machine; it is taken on copies, leaving ``net`` and
``objective`` (and the objective's auxiliary state) untouched.

``resolve_budget`` turns ``train.budget`` into the run's iterations once, before training starts:
``train.iterations`` when ``by: iterations``; ``floor(budget.flops / flops_per_step)`` when
``by: flops``, counted on the CPU on one batch of the configured shapes (``train.batch_size``
patches of ``train.patch_size``), or read back from the checkpoint a run resumes.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.flop_counter import FlopCounterMode

from pipeline.config import Params
from pipeline.models.registry import build_model
from pipeline.objectives.base import Objective
from pipeline.objectives.registry import build_objective
from pipeline.train.checkpoint import load_checkpoint


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


@dataclass(frozen=True)
class Budget:
    """A run's resolved length: ``by`` (iterations or flops), its iterations and, by FLOPs, the count per step."""

    by: str
    iterations: int
    flops_per_step: int | None = None

    def logged(self) -> dict[str, Any]:
        """What MLflow records of it: ``train/iterations`` and, by FLOPs, ``train/flops_per_step``."""
        flops = {"train/flops_per_step": self.flops_per_step} if self.flops_per_step is not None else {}
        return {"train/iterations": self.iterations, **flops}


def resolve_budget(params: Params, resume: Path | None) -> tuple[Params, Budget]:
    """``params`` with ``train.iterations`` set to what ``train.budget`` buys, and that budget.

    A resumed run by FLOPs reuses the budget stored in its checkpoint's meta, so it ends where the
    uninterrupted run would have ended."""
    config = params.train
    if config.budget.by == "iterations":
        return params, Budget("iterations", config.iterations)
    stored = load_checkpoint(resume, map_location="cpu")["meta"].get("budget") if resume is not None else None
    if stored is not None and stored["by"] == "flops":
        budget = Budget(**stored)
    else:
        flops = step_flops_of(params)
        budget = Budget("flops", iterations_for_budget(config.budget.flops, flops), flops)
    train = config.model_copy(update={"iterations": budget.iterations})
    return params.model_copy(update={"train": train}), budget


def step_flops_of(params: Params) -> int:
    """Training FLOPs per step of ``params``' network and objective on one batch of the configured shapes."""
    config, scale = params.train, params.train.scale
    side = config.patch_size // scale
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(params.seed)
        net = build_model(params.model.name, scale, params.model.args)
        objective = build_objective(params.loss, net.feature_channels, scale, total_iterations=config.iterations)
        lr = torch.rand(config.batch_size, 3, side, side)
        hr = torch.rand(config.batch_size, 3, side * scale, side * scale)
        return training_step_flops(net, objective, lr, hr)

