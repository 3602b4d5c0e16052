"""LR schedules: warm-up, cosine end points, multistep milestones, constant."""

from __future__ import annotations

import math

import pytest

from pipeline.config import SchedulerConfig
from pipeline.train.schedule import LrSchedule


def test_linear_warmup_reaches_the_base_lr():
    schedule = LrSchedule(SchedulerConfig(name="constant", warmup=4), iterations=100, base_lr=1e-3)
    assert [schedule(t) for t in range(6)] == pytest.approx([2.5e-4, 5e-4, 7.5e-4, 1e-3, 1e-3, 1e-3])


def test_cosine_runs_from_base_to_min_lr():
    schedule = LrSchedule(SchedulerConfig(name="cosine", warmup=10, min_lr=1e-5), iterations=110, base_lr=1e-3)
    assert schedule(10) == pytest.approx(1e-3)
    assert schedule(60) == pytest.approx((1e-3 + 1e-5) / 2)
    assert schedule(110) == pytest.approx(1e-5)
    values = [schedule(t) for t in range(10, 111)]
    assert all(a >= b for a, b in zip(values, values[1:]))


def test_multistep_multiplies_by_gamma_at_each_milestone():
    schedule = LrSchedule(SchedulerConfig(name="multistep", milestones=[0.5, 0.75], gamma=0.1), 200, base_lr=1.0)
    assert [schedule(t) for t in (0, 99, 100, 149, 150, 199)] == pytest.approx([1, 1, 0.1, 0.1, 0.01, 0.01])


def test_min_lr_above_base_lr_keeps_the_base_lr():
    schedule = LrSchedule(SchedulerConfig(name="cosine", min_lr=1.0), iterations=10, base_lr=0.1)
    assert all(math.isclose(schedule(t), 0.1) for t in range(10))
