"""A run's state at its start: seeded new networks and optimiser, or all of it restored from ``last.pt``.

``RunState`` is what a checkpoint holds of one run. ``start_or_resume`` builds it on the device and,
given a checkpoint, restores weights, optimiser moments, EMA, loss scaler, the objective's own
optimisers, the random generators and the best metric, so that a resumed run ends bitwise equal to
an uninterrupted one; hyperparameters (LR, betas, weight decay) always come from ``params``. A
checkpoint trained with another network, objective or scale (``RESUME_MUST_MATCH``) is refused; other
changed params are named in a warning. Without a checkpoint, ``train.init_from`` may give the start
weights (``pipeline.train.init_weights``). In a process group every rank must resume from the same
checkpoint; rank 0's weights are broadcast before the EMA copies them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from pipeline.config import Params
from pipeline.errors import PipelineError
from pipeline.models.registry import build_model
from pipeline.objectives.base import Objective
from pipeline.objectives.registry import build_objective
from pipeline.redact import redact_data
from pipeline.train.checkpoint import checkpoint_meta, load_checkpoint
from pipeline.train.device import DeviceSetup
from pipeline.train.distributed import broadcast_weights
from pipeline.train.ema import ModelEma
from pipeline.train.init_weights import initialise_from
from pipeline.train.rng import rng_state, seed_everything, set_rng_state
from pipeline.train.step_time import StepTimes

log = logging.getLogger(__name__)

RESUME_MUST_MATCH = ("model", "loss", "train.scale")


@dataclass
class RunState:
    """What a checkpoint holds of one run: networks, optimiser, loss scaler, EMA, the best metric so
    far (updated in place), the iteration training starts from and its measured step times (``steps``,
    recorded as ``meta.step_ms`` in every checkpoint)."""

    meta: dict[str, Any]
    net: nn.Module
    objective: Objective
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    ema: ModelEma | None
    best: dict[str, Any]
    start: int
    steps: StepTimes = field(default_factory=StepTimes)

    def state(self, done: int) -> dict[str, Any]:
        """The checkpoint after ``done`` iterations (random generators included)."""
        self.steps.record_in(self.meta)
        return {"meta": self.meta, "model": self.net.state_dict(), "objective": self.objective.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "ema": self.ema.state_dict() if self.ema is not None else None,
                "scaler": self.scaler.state_dict(), "aux": self.objective.aux_state_dict(), "iteration": done,
                "rng": rng_state(), "best": dict(self.best)}


def start_or_resume(params: Params, setup: DeviceSetup, resume: Path | None, world_size: int) -> RunState:
    """Seeded new networks and optimiser on the device, restored from ``resume`` when given; in a
    process group rank 0's weights are broadcast before the EMA copies them."""
    config = params.train
    seed_everything(params.seed)
    net = build_model(params.model.name, config.scale, params.model.args)
    objective = build_objective(params.loss, net.feature_channels, config.scale, total_iterations=config.iterations)
    net.to(setup.device, memory_format=setup.memory_format)
    objective.to(setup.device, memory_format=setup.memory_format)
    optimizer_class = torch.optim.AdamW if config.optimizer == "adamw" else torch.optim.Adam
    optimizer = optimizer_class([*net.parameters(), *objective.sr_parameters()], lr=config.lr, betas=config.betas,
                                weight_decay=config.weight_decay)
    scaler = torch.amp.GradScaler(setup.device.type, enabled=setup.uses_grad_scaler)
    run = RunState(meta=checkpoint_meta(params, net.feature_channels), net=net, objective=objective,
                    optimizer=optimizer, scaler=scaler, ema=None,
                    best={"metric": config.select_metric, "value": None, "iteration": None}, start=0)
    checkpoint = load_checkpoint(resume, map_location=setup.device) if resume is not None else None
    if checkpoint is not None:
        _restore(run, checkpoint, params, Path(resume))
    elif config.init_from is not None:
        log.info("starting from %s", initialise_from(config.init_from, params.model.name, net, objective,
                                                     config.init_key, config.init_head))
    if world_size > 1:
        broadcast_weights([net, objective])
    run.ema = ModelEma({"net": net, "head": objective.head}, config.ema) if config.ema is not None else None
    if run.ema is not None and checkpoint is not None and checkpoint["ema"]:
        run.ema.load_state_dict(checkpoint["ema"])
    return run


def _restore(run: RunState, checkpoint: dict[str, Any], params: Params, path: Path) -> None:
    """Load ``checkpoint`` (the EMA aside) into ``run``; hyperparameters stay those of ``params``."""
    config = params.train
    _check_resumable(checkpoint["meta"]["params"], params, path)
    run.net.load_state_dict(checkpoint["model"])
    run.objective.load_state_dict(checkpoint["objective"])
    run.objective.load_aux_state_dict(checkpoint["aux"])
    run.optimizer.load_state_dict(checkpoint["optimizer"])
    for group in run.optimizer.param_groups:
        group.update(betas=config.betas, weight_decay=config.weight_decay)
    if checkpoint["scaler"]:
        run.scaler.load_state_dict(checkpoint["scaler"])
    set_rng_state(checkpoint["rng"])
    if checkpoint["best"]["metric"] == config.select_metric:
        run.best = checkpoint["best"]
    run.start = checkpoint["iteration"]
    log.info("resuming %s from iteration %d", path, run.start)


def _check_resumable(trained_with: dict[str, Any], params: Params, path: Path) -> None:
    """Refuse a checkpoint whose network or objective differs; warn about other differences."""
    differences = sorted(_differences(trained_with, redact_data(params.model_dump(mode="json"))))  # as saved
    fatal = [key for key in differences if any(key == part or key.startswith(f"{part}.") for part in RESUME_MUST_MATCH)]
    if fatal:
        raise PipelineError(f"checkpoint '{path}' was trained with different {', '.join(fatal)}; resume it with "
                            "the params it was trained with or start a new run")
    if differences:
        log.warning("resuming '%s' with changed params: %s", path, ", ".join(differences))


def _differences(old: Any, new: Any, prefix: str = "") -> list[str]:
    if isinstance(old, dict) and isinstance(new, dict):
        return [key for name in old.keys() | new.keys()
                for key in _differences(old.get(name), new.get(name), f"{prefix}{name}.")]
    return [] if old == new else [prefix.rstrip(".")]
