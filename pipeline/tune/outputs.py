"""The sweep's outputs for DVC (never the raw Ray folder).

- ``<results_dir>/sweep/trials.csv``: one row per trial: id, objective, seed index, status, the
  iteration reached, the searched values (one column per dotted key), ``best/<metric>``, the final
  validation metrics, seconds inside the trial, its MLflow run id and its error.
- ``<results_dir>/sweep/best.yaml``: per objective, the params fragment that reproduces its best
  configuration, the searched values, the mean and spread of the metric over seeds, the trials.
- ``<models_dir>/<objective>/best.pt`` (the best seed's ``best.pt``), ``seeds/<seed>.pt`` (every
  seed of the best configuration when ``sweep.seeds`` > 1; ``<seed>`` is the training seed) and
  ``info.json`` (the sweep's name and id, trial, MLflow run ids, configuration, iterations run and metrics
  per seed), and
  ``<models_dir>/sweep.json`` (the sweep's name, id, objectives and those with a model), as
  ``pipeline.report.sweep_outputs`` reads them.
"""

from __future__ import annotations

import csv
import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

import yaml

from pipeline.config import Params
from pipeline.sweep_files import SWEEP_FILE
from pipeline.tune.results import Selection, TrialRecord
from pipeline.tune.space import SearchSpace


def write_trials_csv(records: list[TrialRecord], path: Path, metric: str) -> None:
    keys = sorted({key for record in records for key in record.choice.values})
    finals = sorted({key for record in records for key in record.final})
    header = ["trial_id", "objective", "seed", "status", "iteration", *keys, f"best/{metric}", *finals, "seconds",
              "mlflow_run_id", "error"]
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        for record in sorted(records, key=lambda r: (r.choice.objective, r.trial_id)):
            writer.writerow([record.trial_id, record.choice.objective, record.seed, record.status, record.iteration,
                             *(_cell(record.choice.values.get(key)) for key in keys), _cell(record.best),
                             *(_cell(record.final.get(key)) for key in finals), f"{record.seconds:.2f}",
                             record.run_id or "", record.error])


def _cell(value: Any) -> str:
    if value is None:
        return ""
    return json.dumps(value) if isinstance(value, (list, dict)) else str(value)


def best_configurations(selections: dict[str, Selection], space: SearchSpace, metric: str,
                        mode: str) -> dict[str, Any]:
    """The content of ``best.yaml``."""
    objectives = {}
    for name, selection in sorted(selections.items()):
        best = selection.best
        objectives[name] = {
            "params": space.fragment(best.choice), "values": best.choice.values,
            "mean": selection.mean, "std": selection.std, "seeds": len(selection.seeds),
            "best": best.best, "trial_id": best.trial_id, "trials": [t.trial_id for t in selection.seeds],
            "tried": selection.tried, "failed": selection.failed,
        }
    return {"metric": metric, "mode": mode, "objectives": objectives}


def write_best_yaml(content: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(content, sort_keys=False))


def export_models(selections: dict[str, Selection], base: Params, space: SearchSpace, tracking: dict[str, Any],
                  seeds: int, sweep: dict[str, str]) -> dict[str, Path]:
    """Write ``<models_dir>/<objective>/`` for each selection (replacing what was there) and
    ``<models_dir>/sweep.json``; returns the ``best.pt`` paths. ``tracking`` holds
    ``parent_run_id``/``experiment_id``/``tracking_uri`` (or nothing); ``sweep`` is the sweep's
    ``{"name", "id"}``, which every ``info.json`` and ``sweep.json`` carry so that evaluate can tell
    this sweep's models from an earlier sweep's."""
    written = {}
    for name, selection in sorted(selections.items()):
        folder = Path(base.models_dir) / name
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        if seeds > 1:
            (folder / "seeds").mkdir()
        per_seed = []
        for record in selection.seeds:
            seed = base.seed + record.seed
            kept = _fetch_best(record, folder / "seeds" / f"{seed}.pt") if seeds > 1 else None
            per_seed.append({"seed": seed, "trial_id": record.trial_id, "run_id": record.run_id,
                             "status": record.status, "iteration": record.iteration, "best": record.best,
                             "final": record.final,
                             "checkpoint": str(kept.relative_to(folder)) if kept else None})
        if seeds > 1:
            shutil.copyfile(folder / "seeds" / f"{base.seed + selection.best.seed}.pt", folder / "best.pt")
        else:
            _fetch_best(selection.best, folder / "best.pt")
        info = {"objective": name, "sweep": sweep, "trial_id": selection.best.trial_id,
                "run_id": selection.best.run_id,
                **tracking, "config": space.fragment(selection.best.choice), "values": selection.best.choice.values,
                "metric": base.sweep.metric, "mode": base.sweep.mode, "mean": selection.mean, "std": selection.std,
                "seeds": per_seed}
        (folder / "info.json").write_text(json.dumps(info, indent=2))
        written[name] = folder / "best.pt"
    current = {**sweep, "objectives": sorted(space.objectives), "with_model": sorted(selections)}
    (Path(base.models_dir) / SWEEP_FILE).write_text(json.dumps(current, indent=2))
    return written


def _fetch_best(record: TrialRecord, destination: Path) -> Path:
    """Copy the ``best.pt`` of a trial's latest reported checkpoint (from its storage) to ``destination``."""
    with tempfile.TemporaryDirectory(prefix="srloss-checkpoint-") as folder:
        record.checkpoint.to_directory(folder)
        shutil.copyfile(Path(folder) / "best.pt", destination)
    return destination
