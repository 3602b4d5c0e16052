"""``train.budget``: equal FLOP budgets buy iterations in inverse proportion to FLOPs per step, resolved
once, logged, stored in the checkpoint, and reused by a resume."""

from __future__ import annotations

import pytest

from pipeline.config import LossConfig, Params
from pipeline.errors import ConfigError
from pipeline.params_file import load_params
from pipeline.train import flops
from pipeline.train.callbacks import Callback
from pipeline.train.checkpoint import load_checkpoint
from pipeline.train.flops import resolve_budget, step_flops_of
from pipeline.train.loop import fit
from tests.conftest import CrashAtValidation
from tests.train.test_fit import assert_same_tensors

TLW = {"objective": "tlw", "args": {"features": 8, "depth": 2, "variant": "stochastic"}, "terms": {}}


class ContextKeeper(Callback):
    def on_start(self, ctx):
        self.ctx = ctx


def _by_flops(params: Params, budget: float) -> Params:
    params.train.budget = params.train.budget.model_validate({"by": "flops", "flops": budget})
    return params


def test_equal_flop_budgets_buy_iterations_inversely_to_the_flops_per_step(tiny_data):
    l1_flops = step_flops_of(tiny_data)
    assert step_flops_of(tiny_data) == l1_flops  # deterministic: shapes only
    tlw_params = tiny_data.model_copy(deep=True)
    tlw_params.loss = LossConfig.model_validate(TLW)
    tlw_flops = step_flops_of(tlw_params)
    assert tlw_flops > l1_flops
    budget = 40.5 * l1_flops
    l1, l1_budget = resolve_budget(_by_flops(tiny_data, budget), None)
    tlw, tlw_budget = resolve_budget(_by_flops(tlw_params, budget), None)
    assert (l1.train.iterations, l1_budget.flops_per_step) == (40, l1_flops)
    assert tlw.train.iterations == tlw_budget.iterations == int(budget // tlw_flops) < 40
    for resolved, per_step in ((l1, l1_flops), (tlw, tlw_flops)):  # whole steps, as many as the budget buys
        assert resolved.train.iterations * per_step <= budget < (resolved.train.iterations + 1) * per_step
    assert tiny_data.train.iterations == 12  # the caller's params are left as they were


def test_by_iterations_counts_nothing_and_keeps_train_iterations(tiny_data, monkeypatch):
    monkeypatch.setattr(flops, "step_flops_of", lambda params: pytest.fail("counted FLOPs by iterations"))
    resolved, budget = resolve_budget(tiny_data, None)
    assert resolved is tiny_data and budget.logged() == {"train/iterations": 12}


def test_flops_budget_without_flops_is_refused_with_the_fix(tmp_path):
    (tmp_path / "params.yaml").write_text("seed: 0\n")
    with pytest.raises(ConfigError, match=r"'train.budget': by: flops needs flops.*bench/step_flops.py"):
        load_params(tmp_path / "params.yaml", ["train.budget.by=flops"])
    given = load_params(tmp_path / "params.yaml", ["train.budget.by=flops", "train.budget.flops=3e15"])
    assert given.train.budget.flops == 3e15


def test_resume_under_a_flops_budget_equals_the_uninterrupted_run(tiny_data, tmp_path, monkeypatch):
    per_step = step_flops_of(tiny_data)
    _by_flops(tiny_data, 12 * per_step)
    tiny_data.train.iterations = 1000  # ignored by FLOPs
    keeper = ContextKeeper()
    whole = fit(tiny_data, tmp_path / "whole", [keeper])
    assert whole.iterations == 12
    assert keeper.ctx.budget == {"train/iterations": 12, "train/flops_per_step": per_step}
    assert keeper.ctx.params.train.iterations == 12
    with pytest.raises(KeyboardInterrupt):
        fit(tiny_data, tmp_path / "split", [CrashAtValidation(6)])
    last = tmp_path / "split" / "checkpoints" / "last.pt"
    assert load_checkpoint(last)["meta"]["budget"] == {"by": "flops", "iterations": 12, "flops_per_step": per_step}
    monkeypatch.setattr(flops, "step_flops_of", lambda params: pytest.fail("a resume counted FLOPs again"))
    resumed = fit(tiny_data, tmp_path / "split", resume=last)
    a, b = load_checkpoint(whole.last_checkpoint), load_checkpoint(resumed.last_checkpoint)
    assert a["iteration"] == b["iteration"] == 12
    for part in ("model", "optimizer", "rng"):
        assert_same_tensors(a[part], b[part])
    assert resumed.final_metrics == whole.final_metrics
