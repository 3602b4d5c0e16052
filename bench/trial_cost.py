"""Relative cost of one sweep trial per objective, as ``pipeline.tune.cost.TRIAL_COST`` records it.

A trial of the default study is ``train.iterations`` training steps and ``iterations / val_every``
validations of ``prepare.val_count`` images; an objective's cost is therefore
``iterations x step + validations x val_count x validation``, where ``step`` is one training step
(``objective(net(lr))``, ``aux_step`` where the objective has one, loss, backward, Adam) on a batch of
the params' size, and ``validation`` the network and the objective's ``decode`` of one 600x400 HR
image (the size of the Builtin validation photos) without gradients. Both are timed round by round,
the objectives interleaved (each round starting one later), and each round's costs divided by
``l1``'s of the same round; printed as min / median / max over the rounds with the load average.

Run from the project root: ``PYTHONPATH=. python bench/trial_cost.py [--rounds 5]``.
"""

from __future__ import annotations

import argparse
import os
import time

import torch
import torch.nn.functional as F

from bench.spread import spread_text
from pipeline.models.registry import build_model
from pipeline.objectives.registry import build_objective
from pipeline.params_file import load_params
from pipeline.tune.space import SearchSpace, TrialChoice

VALIDATION_HR = (400, 600)


class Trial:
    """One objective's network, head and optimiser, with a training step and a validation of one image."""

    def __init__(self, params) -> None:
        torch.manual_seed(0)
        self.params = params
        self.net = build_model(params.model.name, params.train.scale, params.model.args)
        self.objective = build_objective(params.loss, self.net.feature_channels, params.train.scale,
                                         total_iterations=params.train.iterations)
        self.optimizer = torch.optim.Adam([*self.net.parameters(), *self.objective.sr_parameters()], lr=1e-4)

    def step(self, lr: torch.Tensor, hr: torch.Tensor) -> float:
        start = time.perf_counter()
        self.optimizer.zero_grad(set_to_none=True)
        out = self.objective(self.net(lr))
        if self.objective.has_aux_step:
            with torch.no_grad():
                sr = self.objective.decode(out)
            self.objective.aux_step(sr, hr, 0)
        self.objective.loss(out, hr, 0)["total"].backward()
        self.optimizer.step()
        return time.perf_counter() - start

    def validation(self, lr: torch.Tensor) -> float:
        start = time.perf_counter()
        with torch.no_grad():
            self.objective.decode(self.objective(self.net(lr)))
        return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    base = load_params(args.params)
    space = SearchSpace(base.sweep)
    trials = {name: Trial(space.trial_params(base, TrialChoice(name, {}, 0))) for name in space.objectives}
    config = base.train
    generator = torch.Generator().manual_seed(0)
    hr = torch.rand(config.batch_size, 3, config.patch_size, config.patch_size, generator=generator)
    lr = F.avg_pool2d(hr, config.scale)
    image = F.avg_pool2d(torch.rand(1, 3, *VALIDATION_HR, generator=generator), config.scale)
    validations = config.iterations // config.val_every * base.prepare.val_count
    names = list(trials)
    for trial in trials.values():  # warm-up: Adam state, first-use allocations
        trial.step(lr, hr)
        trial.validation(image)
    load = os.getloadavg()[0]
    ratios: dict[str, list[float]] = {name: [] for name in names}
    for index in range(args.rounds):
        shift = index % len(names)
        cost = {name: config.iterations * trials[name].step(lr, hr) + validations * trials[name].validation(image)
                for name in names[shift:] + names[:shift]}
        for name in names:
            ratios[name].append(cost[name] / cost["l1"])
    print(f"trial cost relative to l1 (min / median / max over {args.rounds} rounds); load average "
          f"{load:.1f} before, {os.getloadavg()[0]:.1f} after")
    for name in names:
        print(f"{name:14s} {spread_text(ratios[name], 2)}")


if __name__ == "__main__":
    main()
