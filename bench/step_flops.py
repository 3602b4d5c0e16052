"""Training FLOPs per step of every objective of the study, and each as a multiple of L1's.

Counted by ``pipeline.train.flops.training_step_flops`` on the network of ``params.yaml`` with one
batch of ``train.batch_size`` LR patches of ``train.patch_size / scale`` pixels (shapes only: the
count is machine-independent). Also prints the ``train.budget.flops`` that buys L1 its
``train.iterations`` steps, and the iterations each objective gets at that budget
(``iterations_for_budget``: what ``dvc exp run -S train.budget.by=flops -S train.budget.flops=<it>``
trains). Run from the project root: ``PYTHONPATH=. python bench/step_flops.py``.
"""

from __future__ import annotations

import torch

from pipeline.config import LossConfig
from pipeline.models.registry import build_model
from pipeline.objectives.registry import build_objective
from pipeline.params_file import load_params
from pipeline.train.flops import iterations_for_budget, training_step_flops


def main() -> None:
    params = load_params()
    train, scale = params.train, params.train.scale
    torch.manual_seed(0)
    side = train.patch_size // scale
    lr = torch.rand(train.batch_size, 3, side, side)
    hr = torch.rand(train.batch_size, 3, side * scale, side * scale)
    net = build_model(params.model.name, scale, params.model.args)
    counts = {}
    for name, fragment in params.sweep.objectives.items():
        loss = LossConfig(**fragment["loss"])
        objective = build_objective(loss, net.feature_channels, scale, train.iterations)
        counts[name] = training_step_flops(net, objective, lr, hr)
    budget = counts["l1"] * train.iterations
    print(f"{params.model.name} {params.model.args}, x{scale}, batch {train.batch_size} x {side}x{side} LR")
    print(f"train.budget.flops for {train.iterations} l1 steps: {budget:.6e} ({budget} FLOPs)")
    for name, flops in counts.items():
        print(f"  {name:14s} {flops / 1e9:8.3f} GFLOP/step   x l1 {flops / counts['l1']:.3f}   "
              f"{iterations_for_budget(budget, flops):5d} iterations at that budget")


if __name__ == "__main__":
    main()
