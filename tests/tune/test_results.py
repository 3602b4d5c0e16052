"""Choosing each objective's best configuration (mean over seeds) and writing the sweep's outputs
in the layout the evaluate stage reads (no Ray needed)."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest
import yaml

from pipeline.config import SweepConfig
from pipeline.errors import PipelineError
from pipeline.report.sweep_outputs import find_trained_objectives
from pipeline.tune.outputs import best_configurations, export_models, write_best_yaml, write_trials_csv
from pipeline.tune.results import COMPLETED, FAILED, STOPPED, TrialRecord, require_some_success, select_best
from pipeline.tune.space import SearchSpace, TrialChoice


class FileCheckpoint:
    """Stands for a Tune checkpoint: ``to_directory`` copies one real ``best.pt`` there."""

    def __init__(self, best: Path):
        self.best = best

    def to_directory(self, folder: str) -> None:
        shutil.copyfile(self.best, Path(folder) / "best.pt")


def record(trial_id: str, objective: str, lr: float, seed: int, best: float | None, status: str = COMPLETED,
           checkpoint: Path | None = None) -> TrialRecord:
    return TrialRecord(trial_id=trial_id, choice=TrialChoice(objective, {"train.lr": lr}, seed), status=status,
                       iteration=12, best=best, final={"val/psnr": best or 0.0}, seconds=1.0,
                       error="PipelineError: training diverged" if status == FAILED else "",
                       checkpoint=FileCheckpoint(checkpoint) if checkpoint else None, run_id=f"run-{trial_id}")


@pytest.fixture
def records(tiny_checkpoint) -> list[TrialRecord]:
    """Objective a: lr 1e-3 has the best single seed (31) but lr 2e-3 the best mean (30.5 vs 29.5);
    objective b: one configuration, one seed failed."""
    return [record("t0", "a", 1e-3, 0, 31.0, checkpoint=tiny_checkpoint),
            record("t1", "a", 1e-3, 1, 28.0, checkpoint=tiny_checkpoint),
            record("t2", "a", 2e-3, 0, 30.0, STOPPED, checkpoint=tiny_checkpoint),
            record("t3", "a", 2e-3, 1, 31.0, checkpoint=tiny_checkpoint),
            record("t4", "b", 1e-3, 0, 25.0, checkpoint=tiny_checkpoint),
            record("t5", "b", 1e-3, 1, None, FAILED)]


def test_the_best_configuration_has_the_best_mean_over_seeds(records):
    selections = select_best(records, "max")
    a = selections["a"]
    assert [t.trial_id for t in a.seeds] == ["t3", "t2"] and a.best.trial_id == "t3"
    assert a.mean == pytest.approx(30.5) and a.std == pytest.approx(0.7071, abs=1e-4)
    assert (a.tried, a.failed) == (4, 0)
    b = selections["b"]
    assert [t.trial_id for t in b.seeds] == ["t4"] and (b.mean, b.std, b.tried, b.failed) == (25.0, 0.0, 2, 1)
    lowest = select_best(records, "min")["a"]
    assert lowest.mean == pytest.approx(29.5) and lowest.best.trial_id == "t1"


def test_no_usable_trial_is_an_error_naming_the_first_failure(records):
    with pytest.raises(PipelineError, match="none of the 1 sweep trials produced a model; the first error: "
                                            "PipelineError: training diverged; see trials.csv"):
        require_some_success([records[-1]], "trials.csv")
    require_some_success(records, "trials.csv")


def test_outputs_hold_every_trial_and_the_models_the_evaluate_stage_reads(records, tiny_data, tmp_path):
    tiny_data.sweep = SweepConfig(objectives={"a": {"loss": {"terms": {"l1": 1.0}}}, "b": {}}, seeds=2)
    tiny_data.models_dir = tmp_path / "models"
    space = SearchSpace(tiny_data.sweep)
    selections = select_best(records, "max")

    write_trials_csv(records, tmp_path / "trials.csv", "val/psnr")
    rows = list(csv.DictReader((tmp_path / "trials.csv").open()))
    assert [row["trial_id"] for row in rows] == ["t0", "t1", "t2", "t3", "t4", "t5"]
    assert rows[2]["status"] == "STOPPED" and rows[2]["train.lr"] == "0.002" and rows[2]["best/val/psnr"] == "30.0"
    assert rows[5]["error"] == "PipelineError: training diverged" and rows[5]["best/val/psnr"] == ""

    content = best_configurations(selections, space, "val/psnr", "max")
    write_best_yaml(content, tmp_path / "best.yaml")
    best = yaml.safe_load((tmp_path / "best.yaml").read_text())
    assert best["objectives"]["a"]["params"] == {"loss": {"terms": {"l1": 1.0}}, "train": {"lr": 0.002}}
    assert best["objectives"]["a"]["trials"] == ["t3", "t2"] and best["objectives"]["a"]["mean"] == 30.5

    tracking = {"parent_run_id": "parent", "experiment_id": "1", "tracking_uri": "sqlite:///x.db"}
    written = export_models(selections, tiny_data, space, tracking, seeds=2, sweep={"name": "s", "id": "abc"})
    assert written == {"a": tmp_path / "models" / "a" / "best.pt", "b": tmp_path / "models" / "b" / "best.pt"}
    found = {objective.name: objective for objective in find_trained_objectives(tmp_path / "models")}
    assert set(found) == {"a", "b"} and sorted(found["a"].seeds) == [0, 1] and sorted(found["b"].seeds) == [0]
    assert found["a"].run_id == "run-t3" and found["a"].parent_run_id == "parent"
    info = json.loads((tmp_path / "models" / "a" / "info.json").read_text())
    assert [seed["trial_id"] for seed in info["seeds"]] == ["t3", "t2"] and info["values"] == {"train.lr": 0.002}
    assert info["sweep"] == {"name": "s", "id": "abc"} and found["b"].sweep == {"name": "s", "id": "abc"}
    assert json.loads((tmp_path / "models" / "sweep.json").read_text()) == {
        "name": "s", "id": "abc", "objectives": ["a", "b"], "with_model": ["a", "b"]}


def test_samples_that_drew_the_same_values_count_as_one_seed(tiny_checkpoint):
    twins = [record("t0", "a", 1e-3, 0, 30.0, checkpoint=tiny_checkpoint),
             record("t1", "a", 1e-3, 0, 30.0, checkpoint=tiny_checkpoint)]
    selection = select_best(twins, "max")["a"]
    assert len(selection.seeds) == 1 and selection.tried == 2
