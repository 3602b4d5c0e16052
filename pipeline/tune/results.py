"""A finished sweep's trials as records, and the best configuration of each objective.

A trial's score is the best value of ``sweep.metric`` over its validations (the value its
``best.pt`` holds). A configuration (objective + values) is scored by the mean of its seeds'
scores (one trial per seed: samples that drew the same values repeat a run); the best
configuration of an objective has the best mean, and its best seed provides ``best.pt``. Trials
that raised, or never validated, are left out of the means.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from pipeline.errors import PipelineError
from pipeline.tune.space import TrialChoice, trial_choice

COMPLETED, STOPPED, FAILED = "COMPLETED", "STOPPED", "FAILED"
BOOKKEEPING = {"iteration", "iterations", "validations", "checkpoint_path"}


@dataclass
class TrialRecord:
    """One trial: its choice, how it ended (``COMPLETED``; ``STOPPED`` early by the scheduler;
    ``FAILED``), its best and final metrics, time inside the trial, the error's last line, and
    where its checkpoints are (a Tune checkpoint, or a Train checkpoint path for DDP trials)."""

    trial_id: str
    choice: TrialChoice
    status: str
    iteration: int
    best: float | None
    final: dict[str, float]
    seconds: float
    error: str = ""
    checkpoint: Any = None
    run_id: str | None = None

    @property
    def seed(self) -> int:
        return self.choice.seed_index

    @property
    def usable(self) -> bool:
        return self.status != FAILED and self.best is not None and self.checkpoint is not None


@dataclass
class Selection:
    """An objective's best configuration: its usable seeds (best first) and their mean and spread."""

    objective: str
    seeds: list[TrialRecord]
    mean: float
    std: float
    tried: int = 0
    failed: int = 0

    @property
    def best(self) -> TrialRecord:
        return self.seeds[0]


def trial_record(result: Any, metric: str, mode: str, storage_filesystem: Any) -> TrialRecord:
    """A ``ray.tune.Result`` as a ``TrialRecord``."""
    from ray import tune

    history = result.metrics_dataframe
    reported = history is not None and not history.empty and metric in history
    last = history.iloc[-1].to_dict() if reported else {}
    trial_id = str(result.metrics.get("trial_id") or Path(result.path).name.split("-")[0])
    best = None
    if reported:
        values = pd.to_numeric(history[metric], errors="coerce").dropna()
        best = float(values.max() if mode == "max" else values.min()) if not values.empty else None
    iteration = int(last.get("iteration", 0) or 0)
    if result.error is not None:
        status = FAILED
    else:
        status = COMPLETED if last and iteration >= int(last.get("iterations", 0)) else STOPPED
    checkpoint = result.checkpoint
    if checkpoint is None and isinstance(last.get("checkpoint_path"), str):
        checkpoint = tune.Checkpoint(path=last["checkpoint_path"], filesystem=storage_filesystem)
    final = {key: float(value) for key, value in last.items() if "/" in key and not key.startswith("config/")
             and key not in BOOKKEEPING and isinstance(value, (int, float)) and not math.isnan(value)}
    return TrialRecord(trial_id=trial_id, choice=trial_choice(result.config), status=status, iteration=iteration,
                       best=best, final=final, seconds=float(last.get("time_total_s", 0.0) or 0.0),
                       error=_last_line(result.error), checkpoint=checkpoint)


def _last_line(error: BaseException | None) -> str:
    """The innermost message of a trial's error (Ray wraps it in tracebacks)."""
    if error is None:
        return ""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[-1] if lines else type(error).__name__


def select_best(records: list[TrialRecord], mode: str) -> dict[str, Selection]:
    """The best configuration of each objective with a usable trial."""
    sign = 1.0 if mode == "max" else -1.0
    by_objective: dict[str, dict[str, list[TrialRecord]]] = {}
    for record in records:
        by_objective.setdefault(record.choice.objective, {}).setdefault(record.choice.configuration, []).append(record)
    selections = {}
    for objective, configurations in by_objective.items():
        scored = []
        for key, trials in configurations.items():
            per_seed: dict[int, TrialRecord] = {}  # two samples can draw the same values: one trial per seed
            for trial in sorted((t for t in trials if t.usable), key=lambda t: -sign * t.best):
                per_seed.setdefault(trial.seed, trial)
            usable = list(per_seed.values())
            if usable:
                scored.append((statistics.fmean(t.best for t in usable), key, usable))
        if not scored:
            continue
        mean, _, seeds = max(scored, key=lambda item: sign * item[0])
        spread = statistics.stdev(t.best for t in seeds) if len(seeds) > 1 else 0.0
        tried = sum(len(trials) for trials in configurations.values())
        failed = sum(t.status == FAILED for trials in configurations.values() for t in trials)
        selections[objective] = Selection(objective, seeds, mean, spread, tried, failed)
    return selections


def require_some_success(records: list[TrialRecord], where: str) -> None:
    """Raise when no trial can provide a model; the error names the first failure."""
    if any(record.usable for record in records):
        return
    failures = [record for record in records if record.error]
    first = f"; the first error: {failures[0].error}" if failures else ""
    raise PipelineError(f"none of the {len(records)} sweep trials produced a model{first}; see {where} and fix the "
                        "params, then run the sweep again")
