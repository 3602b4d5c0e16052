"""What each objective's models cost to train, and the budget protocol that set their length.

A model's training FLOPs are its FLOPs per training step (``pipeline.train.flops``: the checkpoint's
``meta.budget.flops_per_step`` when it trained by FLOPs, else counted here on the params it was
trained with; the count depends only on shapes, so both give the same number) times the iterations
it ran (``info.json``'s ``seeds[].iteration`` as the sweep recorded it, else the ``train.iterations``
it was trained for). Its step time is ``meta.step_ms``, the median wall time of its training
iterations on the machine that trained it (``pipeline.train.step_time``). An objective's figures are
the means over its models (the ``models`` column of the leaderboard).

The protocol (``budget_line``) is read from the params the models were trained with: *equal
iterations* when every objective trained the same ``train.iterations`` by iterations, *equal
training FLOPs* when every one trained by the same ``train.budget.flops``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np

from pipeline.errors import PipelineError
from pipeline.params_file import validate
from pipeline.report.sweep_outputs import TrainedObjective
from pipeline.report.variants import DECODE_SEPARATOR
from pipeline.self_ensemble import SUFFIX as ENSEMBLE_SUFFIX
from pipeline.train.checkpoint import load_checkpoint
from pipeline.train.flops import step_flops_of
from pipeline.train.step_time import STEP_MS

log = logging.getLogger(__name__)

ITERATIONS, FLOPS = "iterations", "flops"


@dataclass(frozen=True)
class TrainingCost:
    """One objective's FLOPs per step (None when they cannot be counted), and per model the iterations
    it ran and its median step time in ms (None when its training did not record one)."""

    flops_per_step: int | None
    iterations: tuple[int, ...]
    step_ms: tuple[float | None, ...]

    @property
    def flops(self) -> float | None:
        """Training FLOPs per model: ``flops_per_step x iterations``, mean over the models."""
        if self.flops_per_step is None or not self.iterations:
            return None
        return float(self.flops_per_step * np.mean(self.iterations))

    @property
    def mean_step_ms(self) -> float | None:
        """The mean of the models' median step times (those that recorded one)."""
        measured = [value for value in self.step_ms if value is not None]
        return float(np.mean(measured)) if measured else None


def training_costs(trained: list[TrainedObjective]) -> dict[str, TrainingCost]:
    """Objective name -> its ``TrainingCost``."""
    return {objective.name: training_cost(objective) for objective in trained}


def training_cost(objective: TrainedObjective) -> TrainingCost:
    """The FLOPs per step, iterations and step times of ``objective``'s models (see the module docstring)."""
    ran = {int(entry["seed"]): int(entry["iteration"]) for entry in objective.info.get("seeds", [])
           if entry.get("iteration")}
    metas = {seed: load_checkpoint(path, map_location="cpu")["meta"] for seed, path in objective.checkpoints.items()}
    iterations = tuple(ran.get(seed, int(meta["params"]["train"]["iterations"])) for seed, meta in metas.items())
    step_ms = tuple(meta.get(STEP_MS) for meta in metas.values())
    return TrainingCost(_flops_per_step(objective, next(iter(metas.values()))), iterations, step_ms)


def _flops_per_step(objective: TrainedObjective, meta: dict[str, Any]) -> int | None:
    """FLOPs per step of the objective's models (one configuration: every seed's are the same)."""
    budget = meta.get("budget") or {}
    if budget.get("flops_per_step"):
        return int(budget["flops_per_step"])
    try:
        return step_flops_of(validate(objective.trained_with, source=f"{objective.best} meta.params"))
    except PipelineError as exc:  # params of an older schema: the cost is shown as unknown
        log.warning("cannot count the training FLOPs of '%s': %s", objective.name, exc)
        return None


def cost_of(costs: dict[str, TrainingCost], method: str) -> TrainingCost | None:
    """The training cost behind a leaderboard row: a decode (``fine_grained@anchor``) or self-ensemble
    (``l1+``) row is its objective's model, so its objective's cost; None for bicubic."""
    return costs.get(method.removesuffix(ENSEMBLE_SUFFIX).split(DECODE_SEPARATOR, 1)[0])


def flops_text(flops: float) -> str:
    """``2.05e12``: three significant digits, a plain exponent."""
    mantissa, exponent = f"{flops:.2e}".split("e")
    return f"{mantissa}e{int(exponent)}"


def protocol(train: dict[str, Any]) -> dict[str, Any]:
    """``{"by", "flops"}`` of one model's ``train`` params (``by: iterations`` for params before budgets)."""
    budget = train.get("budget") or {"by": ITERATIONS, "flops": None}
    return {"by": budget["by"], "flops": budget["flops"] if budget["by"] == FLOPS else None}


def budget_record(trained: list[TrainedObjective]) -> dict[str, Any]:
    """What ``verdicts.json`` keeps of the protocol: ``by`` (iterations, flops or mixed), ``flops`` (the
    budget by FLOPs, else null), ``iterations`` per objective and ``text`` (``budget_line``)."""
    kinds = {(entry["by"], entry["flops"]) for entry in (protocol(o.trained_with["train"]) for o in trained)}
    by, flops = next(iter(kinds)) if len(kinds) == 1 else ("mixed", None)
    return {"by": by, "flops": flops,
            "iterations": {objective.name: objective.trained_with["train"]["iterations"] for objective in trained},
            "text": budget_line(trained)}


def budget_line(trained: list[TrainedObjective]) -> str:
    """``Budget: equal iterations (600 per model)``, ``Budget: equal training FLOPs (2.05e12 per model;
    iterations per objective: l1 600, cs 339)``, or each objective's protocol when they differ."""
    if not trained:
        return "Budget: no trained models."
    protocols = {objective.name: protocol(objective.trained_with["train"]) for objective in trained}
    iterations = {objective.name: int(objective.trained_with["train"]["iterations"]) for objective in trained}
    per_objective = ", ".join(f"{name} {count}" for name, count in iterations.items())
    kinds = {(entry["by"], entry["flops"]) for entry in protocols.values()}
    if len(kinds) > 1:
        return "Budget: differs between objectives: " + "; ".join(
            f"{name} {flops_text(entry['flops'])} FLOPs ({iterations[name]} iterations)" if entry["flops"]
            else f"{name} {iterations[name]} iterations" for name, entry in protocols.items()) + "."
    by, flops = kinds.pop()
    if by == FLOPS:
        return (f"Budget: equal training FLOPs ({flops_text(flops)} per model; iterations per objective: "
                f"{per_objective}).")
    if len(set(iterations.values())) == 1:
        return f"Budget: equal iterations ({next(iter(iterations.values()))} per model)."
    return f"Budget: by iterations, not equal ({per_objective})."
