"""Hooks into a training run (tracking, tuning, tests) and the records passed to them.

The loop writes checkpoints before it calls ``on_validation``/``on_checkpoint``, so a callback
that raises stops the run without losing them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from pipeline.config import Params
from pipeline.objectives.base import Objective
from pipeline.train.validation import Sample

__all__ = ["Callback", "RunContext", "Sample", "TrainResult"]


@dataclass
class RunContext:
    """What a run is made of; ``data_manifest`` holds ``{"hr": ..., "lr": ...}`` manifests when present;
    ``start_iteration`` is the iteration a resumed run continues from (0 for a new run); ``budget`` is what
    ``train.budget`` resolved to (``train/iterations`` and, by FLOPs, ``train/flops_per_step``)."""

    params: Params
    run_dir: Path
    model: nn.Module
    objective: Objective
    device: torch.device
    data_manifest: dict[str, Any]
    start_iteration: int = 0
    budget: dict[str, Any] = field(default_factory=dict)


@dataclass
class TrainResult:
    """The outcome of ``fit``; ``best_*`` follow ``train.select_metric``/``select_mode``."""

    iterations: int
    best_metric: float | None
    best_iteration: int | None
    final_metrics: dict[str, float]
    last_checkpoint: Path
    best_checkpoint: Path | None
    run_dir: Path


class Callback:
    """Override any of these; each does nothing by default."""

    def on_start(self, ctx: RunContext) -> None:
        """Before the first iteration (also on resume)."""

    def on_train_log(self, iteration: int, logs: dict[str, float]) -> None:
        """Every ``train.log_every`` iterations: ``train/<term>`` means since the last log,
        ``train/total``, ``train/lr`` and the objective's own ``train/<aux>`` values."""

    def on_validation(self, iteration: int, metrics: dict[str, float], samples: list[Sample]) -> None:
        """After each validation (every ``train.val_every`` iterations and at the end)."""

    def on_checkpoint(self, iteration: int, path: Path, is_best: bool) -> None:
        """After ``last.pt`` (``is_best`` False) or ``best.pt`` (True) was written."""

    def on_end(self, result: TrainResult) -> None:
        """After the final validation and checkpoint."""

    def on_failure(self, error: BaseException) -> None:
        """When the run raises (a diverged loss, Ctrl-C, another callback) after ``on_start``;
        the run re-raises ``error`` afterwards. Must not raise."""
