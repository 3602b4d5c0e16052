"""Relative cost of one sweep trial per objective, as ``pipeline.tune.cost.TRIAL_COST`` records it.

A trial of the default study is ``train.iterations`` training steps and ``iterations / val_every``
validations of ``prepare.val_count`` images; an objective's cost is therefore
``iterations x step + validations x val_count x validation``. ``step`` is ``fit``'s own
``pipeline.train.loop.train_step`` on a batch of the params' size, on networks, optimiser and device
set up by ``fit``'s own start (``prepare_device``: subnormals flushed, ...; ``start_or_resume``);
``validation`` is what ``fit``'s validation computes of one 600x400 HR image (the size of the
Builtin validation photos): ``objective.predict(net(lr))`` in eval mode under ``inference_mode``.
Both are timed round by round, the objectives interleaved (each round starting one later), and each
round's costs divided by ``l1``'s of the same round; printed as min / median / max over the rounds
with the load average. ``--clock cpu`` times with this process's CPU time (see
``bench/loss_overhead.py``).

Run from the project root: ``PYTHONPATH=. OMP_NUM_THREADS=1 python bench/trial_cost.py [--rounds 5] [--clock cpu]``.
"""

from __future__ import annotations

import argparse
import os
import time

import torch
import torch.nn.functional as F

from bench.spread import spread_text
from pipeline.params_file import load_params
from pipeline.train.device import prepare_device
from pipeline.train.loop import train_step
from pipeline.train.resume import start_or_resume
from pipeline.tune.space import SearchSpace, TrialChoice

VALIDATION_HR = (400, 600)


class Trial:
    """One objective's networks, optimiser and device as ``fit`` builds them, with its step and a validation."""

    def __init__(self, params, setup, clock) -> None:
        self.run = start_or_resume(params, setup, resume=None, world_size=1)
        self.setup, self.clock = setup, clock

    def step(self, lr: torch.Tensor, hr: torch.Tensor) -> float:
        run = self.run
        start = self.clock()
        train_step(run.net, run.objective, run.optimizer, run.scaler, self.setup, None, lr, hr, 0)
        return self.clock() - start

    def validation(self, lr: torch.Tensor) -> float:
        net, objective = self.run.net.eval(), self.run.objective.eval()
        start = self.clock()
        with torch.inference_mode(), self.setup.autocast():
            objective.predict(net(lr))
        elapsed = self.clock() - start
        net.train(), objective.train()
        return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                        help="cpu: this process's CPU time, for a one-thread run on a machine that others load")
    args = parser.parse_args()
    base = load_params(args.params)
    space = SearchSpace(base.sweep)
    config = base.train
    setup = prepare_device(config)
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    trials = {name: Trial(space.trial_params(base, TrialChoice(name, {}, 0)), setup, clock)
              for name in space.objectives}
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
    print(f"trial cost relative to l1 (min / median / max over {args.rounds} rounds, {args.clock} clock, "
          f"{torch.get_num_threads()} thread(s)); load average "
          f"{load:.1f} before, {os.getloadavg()[0]:.1f} after")
    for name in names:
        print(f"{name:14s} {spread_text(ratios[name], 2)}")


if __name__ == "__main__":
    main()
