"""The sweep's trained models as the evaluate stage reads them.

Layout (written by ``pipeline.tune``): ``<models_dir>/<objective>/best.pt`` (the best trial's best
checkpoint), ``<models_dir>/<objective>/seeds/<seed>.pt`` (each seed of the best configuration,
when the sweep repeated it) and ``<models_dir>/<objective>/info.json``. Of ``info.json`` the report
reads ``run_id`` (the child run behind ``best.pt``), ``parent_run_id``, ``experiment_id`` and
``seeds: [{"seed", "run_id", ...}]``; all are absent when the sweep was not tracked. Folders
without ``best.pt`` are not objectives and are skipped. ``<models_dir>/sweep.json`` names the sweep
that wrote last (``name``, ``id``, ``objectives``, ``with_model``); each ``info.json`` carries the
``sweep`` (``name``, ``id``) that made its model, so models of an earlier sweep are told apart.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.errors import PipelineError
from pipeline.sweep_files import SWEEP_FILE
from pipeline.train.checkpoint import load_checkpoint

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainedObjective:
    """One objective's models; ``trained_with`` is the full params ``best.pt`` was trained with."""

    name: str
    scale: int
    best: Path
    seeds: dict[int, Path]
    trained_with: dict[str, Any]
    network_parameters: int
    info: dict[str, Any]

    @property
    def sweep(self) -> dict[str, str]:
        """The ``{"name", "id"}`` of the sweep that made the model (empty for models of older sweeps)."""
        return self.info.get("sweep") or {}

    @property
    def run_id(self) -> str | None:
        """The MLflow child run that trained ``best.pt``, when the sweep was tracked."""
        return self.info.get("run_id")

    @property
    def parent_run_id(self) -> str | None:
        """The sweep's MLflow parent run, when the sweep was tracked."""
        return self.info.get("parent_run_id")

    @property
    def experiment_id(self) -> str | None:
        return self.info.get("experiment_id")

    @property
    def seed_run_ids(self) -> dict[int, str]:
        """Training seed -> MLflow child run of each seed of the best configuration (tracked sweeps)."""
        return {int(entry["seed"]): entry["run_id"] for entry in self.info.get("seeds", []) if entry.get("run_id")}

    @property
    def checkpoints(self) -> dict[int, Path]:
        """Training seed -> model, for the models whose scores are averaged: every seed when there are
        several, else ``best.pt`` under the seed it was trained with."""
        if self.seeds:
            return {seed: self.seeds[seed] for seed in sorted(self.seeds)}
        return {int(self.trained_with["seed"]): self.best}


def find_trained_objectives(models_dir: Path) -> list[TrainedObjective]:
    """Every ``<models_dir>/<objective>/best.pt`` of the current sweep, sorted by objective name.

    With ``sweep.json`` (written by every sweep) only folders whose ``info.json`` carries its sweep
    id count; those of earlier sweeps are skipped with a warning naming them. Without it (models
    not written by a sweep) every folder counts.
    """
    models_dir = Path(models_dir)
    found = sorted(path.parent for path in models_dir.glob("*/best.pt")) if models_dir.is_dir() else []
    if not found:
        raise PipelineError(f"no trained models in '{models_dir}' (expected <objective>/best.pt); "
                            "run the sweep stage first (`dvc repro sweep` or `python -m pipeline sweep`)")
    objectives = [_read_objective(folder) for folder in found]
    sweep = current_sweep(models_dir)
    if sweep is None:
        return objectives
    current = [objective for objective in objectives if objective.sweep.get("id") == sweep["id"]]
    stale = sorted({objective.name for objective in objectives} - {objective.name for objective in current})
    if stale:
        log.warning("skipping %s in '%s': made by an earlier sweep, not by sweep '%s' (id %s)", ", ".join(stale),
                    models_dir, sweep["name"], sweep["id"])
    if not current:
        raise PipelineError(f"none of the models in '{models_dir}' was made by the current sweep '{sweep['name']}' "
                            f"(id {sweep['id']}); run the sweep stage again")
    return current


def current_sweep(models_dir: Path) -> dict[str, Any] | None:
    """``<models_dir>/sweep.json``: the last sweep's ``name``, ``id``, ``objectives`` and ``with_model``."""
    path = Path(models_dir) / SWEEP_FILE
    if not path.is_file():
        return None
    sweep = _read_info(path)
    if not {"name", "id", "objectives"} <= set(sweep):
        raise PipelineError(f"'{path}' lacks the sweep's name, id or objectives; re-run the sweep stage to rewrite it")
    return sweep


def objectives_without_model(models_dir: Path, trained: list[TrainedObjective]) -> list[str]:
    """The current sweep's objectives that have no model in ``trained`` (all their trials failed)."""
    sweep = current_sweep(models_dir)
    names = {objective.name for objective in trained}
    return sorted(name for name in (sweep or {}).get("objectives", []) if name not in names)


def _read_objective(folder: Path) -> TrainedObjective:
    checkpoint = load_checkpoint(folder / "best.pt")
    meta = checkpoint["meta"]
    seeds = {}
    for path in sorted((folder / "seeds").glob("*.pt")):
        if not path.stem.isdigit():
            raise PipelineError(f"seed checkpoint '{path}' is not named <seed>.pt; re-run the sweep stage")
        seeds[int(path.stem)] = path
    try:
        scale, trained_with = int(meta["scale"]), dict(meta["params"])
        network_parameters = sum(weights.numel() for weights in checkpoint["model"].values())
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise PipelineError(f"'{folder / 'best.pt'}' is not a complete srloss checkpoint (no usable {exc}); "
                            "re-run the sweep stage") from None
    return TrainedObjective(name=folder.name, scale=scale, best=folder / "best.pt", seeds=seeds,
                            trained_with=trained_with, network_parameters=network_parameters,
                            info=_read_info(folder / "info.json"))


def _read_info(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        info = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise PipelineError(f"'{path}' is not valid JSON ({exc.msg}); re-run the sweep stage to rewrite it") from None
    if not isinstance(info, dict):
        raise PipelineError(f"'{path}' must hold a JSON object; re-run the sweep stage to rewrite it")
    return info
