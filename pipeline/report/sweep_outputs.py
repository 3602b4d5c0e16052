"""The sweep's trained models as the evaluate stage reads them.

Layout (written by ``pipeline.tune``): ``<models_dir>/<objective>/best.pt`` (the best trial's best
checkpoint), ``<models_dir>/<objective>/seeds/<seed>.pt`` (each seed of the best configuration,
when the sweep repeated it) and ``<models_dir>/<objective>/info.json``. Of ``info.json`` the report
reads ``run_id`` (the child run behind ``best.pt``), ``parent_run_id``, ``experiment_id`` and
``seeds: [{"seed", "run_id", ...}]``; all are absent when the sweep was not tracked. Folders
without ``best.pt`` are not objectives and are skipped.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.errors import PipelineError
from pipeline.train.checkpoint import load_checkpoint


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
    """Every ``<models_dir>/<objective>/best.pt``, sorted by objective name."""
    models_dir = Path(models_dir)
    found = sorted(path.parent for path in models_dir.glob("*/best.pt")) if models_dir.is_dir() else []
    if not found:
        raise PipelineError(f"no trained models in '{models_dir}' (expected <objective>/best.pt); "
                            "run the sweep stage first (`dvc repro sweep` or `python -m pipeline sweep`)")
    return [_read_objective(folder) for folder in found]


def _read_objective(folder: Path) -> TrainedObjective:
    checkpoint = load_checkpoint(folder / "best.pt")
    meta = checkpoint["meta"]
    seeds = {}
    for path in sorted((folder / "seeds").glob("*.pt")):
        if not path.stem.isdigit():
            raise PipelineError(f"seed checkpoint '{path}' is not named <seed>.pt; re-run the sweep stage")
        seeds[int(path.stem)] = path
    return TrainedObjective(name=folder.name, scale=int(meta["scale"]), best=folder / "best.pt", seeds=seeds,
                            trained_with=meta["params"],
                            network_parameters=sum(weights.numel() for weights in checkpoint["model"].values()),
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
