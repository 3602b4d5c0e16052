"""A sweep whose driver is killed (SIGKILL, with the Ray cluster it started) resumes with
``python -m pipeline sweep --resume`` to the results of uninterrupted training: unfinished trials
go on from their checkpoints, nothing is trained again from an earlier point, and no MLflow run
is duplicated."""

from __future__ import annotations

import contextlib
import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import psutil
import pytest
import torch
import yaml

CODE = Path(__file__).resolve().parents[2]
from pipeline.train.loop import fit
from pipeline.tune.space import SearchSpace, TrialChoice
from tests.tune.sweep_params import sweep_params
from tests.tune.processes import end_session


def wait_for(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.1)


@pytest.mark.slow
def test_a_killed_sweep_resumes_to_the_uninterrupted_results(tiny_data, tmp_path):
    """Three trials on 2 CPUs; the driver dies 0.4 s after the third trial's first checkpoint (its
    reports are ~1 s apart), when the first two have (nearly) finished."""
    params = sweep_params(tiny_data, tmp_path, {"objectives": {name: {"loss": {"terms": {name: 1.0}}}
                                                               for name in ("l1", "l2", "charbonnier")},
                                                "reports": 3}, iterations=600)
    params_file = tmp_path / "params.yaml"
    params_file.write_text(yaml.safe_dump(params.model_dump(mode="json")))
    command = [sys.executable, "-m", "pipeline", "-q", "sweep", "--params", str(params_file)]
    folder = Path(params.sweep.storage_path) / params.sweep.name

    driver = subprocess.Popen(command, cwd=CODE, start_new_session=True, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    sessions = {driver.pid}
    try:
        wait_for(lambda: any(folder.glob("*-charbonnier-seed0/checkpoint_*")), 240, "the third trial's checkpoint")
        time.sleep(0.4)
        # the command runs the driver in a session of its own (pipeline.own_session): kill them all at once
        tree = [psutil.Process(driver.pid), *psutil.Process(driver.pid).children(recursive=True)]
        sessions = {os.getsid(process.pid) for process in tree}
        for process in tree:
            with contextlib.suppress(psutil.NoSuchProcess):
                process.kill()
        driver.wait(timeout=30)
    finally:
        if driver.poll() is None:
            os.killpg(driver.pid, signal.SIGKILL)
        for session in sessions:
            end_session(session)
    state = json.loads((folder / "srloss_sweep.json").read_text())
    parent_before = state["parent_run_id"]

    resumed = subprocess.run([*command, "--resume"], cwd=CODE, capture_output=True, text=True, timeout=400)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert json.loads(resumed.stdout)["resumed"] is True
    assert json.loads(resumed.stdout)["sweep_id"] == state["sweep_id"]  # the resumed sweep keeps its identity
    for objective in ("l1", "l2", "charbonnier"):
        info = json.loads((Path(params.models_dir) / objective / "info.json").read_text())
        assert info["sweep"] == {"name": params.sweep.name, "id": state["sweep_id"]}

    rows = list(csv.DictReader((Path(params.results_dir) / "sweep" / "trials.csv").open()))
    assert len(rows) == 3 and {row["status"] for row in rows} == {"COMPLETED"}
    space = SearchSpace(params.sweep)
    torch.set_num_threads(1)  # as in the trials: the same kernels, the same numbers
    for row in rows:
        reference = fit(space.trial_params(params, TrialChoice(row["objective"], {}, 0)),
                        tmp_path / "reference" / row["trial_id"])
        assert float(row["best/val/psnr"]) == pytest.approx(reference.best_metric, rel=1e-9, abs=1e-9)

    client = mlflow.MlflowClient(params.tracking.uri)
    experiment = client.get_experiment_by_name(params.tracking.experiment).experiment_id
    runs = client.search_runs([experiment])
    parents = [run for run in runs if "mlflow.parentRunId" not in run.data.tags]
    assert [run.info.run_id for run in parents] == [parent_before] and parents[0].info.status == "FINISHED"
    children = [run for run in runs if run.data.tags.get("mlflow.parentRunId") == parent_before]
    assert sorted(run.data.tags["sweep.trial_id"] for run in children) == sorted(row["trial_id"] for row in rows)
    continued = [run for run in children if int(run.data.tags.get("resumed_from_iteration", 0)) > 0]
    assert continued, "no trial went on from a checkpoint"
    for run in children:
        assert run.info.status == "FINISHED"
        history = sorted(client.get_metric_history(run.info.run_id, "val/psnr"), key=lambda m: m.timestamp)
        steps = [m.step for m in history]
        assert steps == sorted(steps) and steps[-1] == 600, steps  # never trained again from an earlier point
