"""Learning-rate schedules: the LR of iteration ``t`` as a pure function of ``t``.

Being stateless, a schedule needs nothing in a checkpoint: a resumed run recomputes it from
params (so a resume with a changed ``train.lr``, as population-based tuning does, takes effect).
With ``W`` warm-up iterations, ``T`` iterations in all and base LR ``lr0``, iteration ``t``
(0-based) uses
- warm-up (``t < W``): ``lr0 * (t + 1) / W``;
- ``cosine``: ``min_lr + (lr0 - min_lr) * (1 + cos(pi * (t - W) / (T - W))) / 2``
  (SGDR, Loshchilov & Hutter 2017, one cycle without restarts);
- ``multistep``: ``lr0 * gamma ** (number of milestones <= t)``, milestones ``round(f * T)``
  for each fraction ``f`` (EDSR, Lim et al. 2017, halves the LR at fixed steps);
- ``constant``: ``lr0``.
"""

from __future__ import annotations

import bisect
import math

from pipeline.config import SchedulerConfig


class LrSchedule:
    """``t -> lr(t)`` for one run."""

    def __init__(self, config: SchedulerConfig, iterations: int, base_lr: float):
        self.name = config.name
        self.warmup = config.warmup
        self.iterations = iterations
        self.base_lr = base_lr
        self.min_lr = min(config.min_lr, base_lr)
        self.gamma = config.gamma
        self.milestones = sorted(round(fraction * iterations) for fraction in config.milestones)

    def __call__(self, t: int) -> float:
        if t < self.warmup:
            return self.base_lr * (t + 1) / self.warmup
        if self.name == "cosine":
            progress = min((t - self.warmup) / max(self.iterations - self.warmup, 1), 1.0)
            return self.min_lr + (self.base_lr - self.min_lr) * 0.5 * (1.0 + math.cos(math.pi * progress))
        if self.name == "multistep":
            return self.base_lr * self.gamma ** bisect.bisect_right(self.milestones, t)
        return self.base_lr
