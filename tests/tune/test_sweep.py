"""Whole sweeps on a local Ray cluster of 2 CPUs with tiny trials: ASHA over two objectives, a
failing trial (one trial at a time), Optuna with repeated seeds and a 2-worker data-parallel
trial; each checks the outputs against trials.csv and the MLflow tree."""

from __future__ import annotations

import contextlib
import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import mlflow
import pytest
import yaml

from pipeline.report.sweep_outputs import find_trained_objectives, objectives_without_model
from pipeline.train.checkpoint import load_checkpoint
from pipeline.tune.sweep import run_sweep
from tests.test_tracking import free_port
from tests.tune.sweep_params import sweep_params

pytestmark = [pytest.mark.usefixtures("local_ray"), pytest.mark.slow]  # 15-30 s each


def read_outputs(params) -> tuple[list[dict], dict]:
    rows = list(csv.DictReader((Path(params.results_dir) / "sweep" / "trials.csv").open()))
    best = yaml.safe_load((Path(params.results_dir) / "sweep" / "best.yaml").read_text())
    return rows, best


def child_runs(params, parent_run_id: str) -> dict[str, mlflow.entities.Run]:
    """The parent's child runs by trial id."""
    client = mlflow.MlflowClient(params.tracking.uri)
    experiment = client.get_experiment_by_name(params.tracking.experiment).experiment_id
    runs = client.search_runs([experiment], f"tags.mlflow.parentRunId = '{parent_run_id}'")
    by_trial = {run.data.tags["sweep.trial_id"]: run for run in runs}
    assert len(by_trial) == len(runs), "a trial has two MLflow runs"
    return by_trial


def test_an_asha_sweep_over_two_objectives_picks_the_best_trial_of_each(tiny_data, tmp_path):
    params = sweep_params(tiny_data, tmp_path, {
        "objectives": {name: {"loss": {"terms": {name: 1.0}}} for name in ("l1", "charbonnier")},
        "space": {"l1": {"train.lr": {"loguniform": [3e-4, 3e-3]}},
                  "charbonnier": {"train.lr": {"choice": [5e-4, 2e-3]}}},
        "num_samples": 2, "reports": 3, "scheduler": {"name": "asha", "grace_period": 1, "reduction_factor": 2}})
    summary = run_sweep(params)
    rows, best = read_outputs(params)
    assert (summary["trials"], summary["failed"], len(rows)) == (4, 0, 4)
    assert {row["status"] for row in rows} <= {"COMPLETED", "STOPPED"}
    assert all(int(row["iteration"]) < 12 for row in rows if row["status"] == "STOPPED")
    runs = child_runs(params, summary["parent_run_id"])
    assert set(runs) == {row["trial_id"] for row in rows}
    for objective in ("l1", "charbonnier"):
        mine = [row for row in rows if row["objective"] == objective]
        winner = max(mine, key=lambda row: float(row["best/val/psnr"]))
        chosen = best["objectives"][objective]
        assert chosen["trial_id"] == winner["trial_id"] and chosen["mean"] == float(winner["best/val/psnr"])
        assert chosen["values"] == {"train.lr": float(winner["train.lr"])}
        checkpoint = load_checkpoint(Path(params.models_dir) / objective / "best.pt")
        trained_with = checkpoint["meta"]["params"]
        assert trained_with["train"]["lr"] == float(winner["train.lr"])
        assert trained_with["loss"]["terms"] == {objective: 1.0}
        assert checkpoint["best"]["value"] == pytest.approx(chosen["mean"])
        info = json.loads((Path(params.models_dir) / objective / "info.json").read_text())
        assert info["run_id"] == winner["mlflow_run_id"] == runs[winner["trial_id"]].info.run_id
        assert info["parent_run_id"] == summary["parent_run_id"]
        assert info["sweep"] == {"name": "test", "id": summary["sweep_id"]}
    for row in rows:
        run = runs[row["trial_id"]]
        assert run.info.status == "FINISHED" and run.data.tags["sweep.objective"] == row["objective"]
        assert run.data.tags.get("sweep.stopped_early") == ("true" if row["status"] == "STOPPED" else None)
        assert run.data.tags["objective"] == row["objective"] and run.data.tags["objective.kind"] == "regression"
        assert run.info.run_name == f"{row['objective']} lr={float(row['train.lr']):.3g} seed0"
    assert "sweep 4/4 done" in (Path(params.results_dir) / "sweep" / "sweep.log").read_text()
    assert len(list((Path(params.results_dir) / "sweep" / "logs").glob("*.log"))) == 4
    parent = mlflow.MlflowClient(params.tracking.uri).get_run(summary["parent_run_id"])
    assert parent.info.status == "FINISHED" and parent.data.params["scheduler"] == "ASHAScheduler"
    assert parent.data.metrics["best/l1/val/psnr"] == best["objectives"]["l1"]["mean"]


@contextlib.contextmanager
def mlflow_ui(backend_uri: str):
    """``mlflow ui`` on a free 127.0.0.1 port, as the README tells users to start it; stopped after."""
    port = free_port()
    command = [sys.executable, "-m", "mlflow", "ui", "--host", "127.0.0.1", "--port", str(port),
               "--workers", "1", "--backend-store-uri", backend_uri]
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{url}/health", timeout=1).close()
                break
            except OSError:
                assert server.poll() is None and time.monotonic() < deadline, "mlflow ui did not start in 60 s"
                time.sleep(0.5)
        yield url
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


def rest(url: str, endpoint: str, body: dict | None = None) -> dict:
    """GET ``endpoint`` (a query string may follow), or POST ``body`` as JSON, on MLflow's REST API."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(f"{url}/api/2.0/mlflow/{endpoint}", data=data,
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def test_the_mlflow_ui_lists_the_sweep_as_a_parent_with_its_child_runs(tiny_data, tmp_path):
    params = sweep_params(tiny_data, tmp_path, {
        "objectives": {name: {"loss": {"terms": {name: 1.0}}} for name in ("l1", "charbonnier")}, "reports": 1})
    summary = run_sweep(params)
    with mlflow_ui(params.tracking.uri) as url:
        experiment = rest(url, f"experiments/get-by-name?experiment_name={params.tracking.experiment}")
        experiment_id = experiment["experiment"]["experiment_id"]
        runs = rest(url, "runs/search", {"experiment_ids": [experiment_id], "max_results": 100})["runs"]
    by_id = {run["info"]["run_id"]: run for run in runs}
    children = [run for run in runs
                if {"key": "mlflow.parentRunId", "value": summary["parent_run_id"]} in run["data"].get("tags", [])]
    assert summary["parent_run_id"] in by_id and len(children) == summary["trials"] == 2
    assert all(any(m["key"] == "val/psnr" for m in child["data"].get("metrics", [])) for child in children)


def test_a_failing_trial_is_retried_then_recorded_failed_while_the_sweep_goes_on(tiny_data, tiny_checkpoint,
                                                                                 tmp_path):
    params = sweep_params(tiny_data, tmp_path, {
        "objectives": {"good": {"loss": {"terms": {"l1": 1.0}}}, "diverging": {"loss": {"terms": {"l1": 1.0}}}},
        "space": {"diverging": {"train.lr": {"choice": [1e30]}}}, "reports": 2, "max_failures": 1,
        "max_concurrent": 1})
    stale = Path(params.models_dir) / "diverging"  # an earlier sweep's model of the objective that fails now
    stale.mkdir(parents=True)
    shutil.copy(tiny_checkpoint, stale / "best.pt")
    (stale / "info.json").write_text(json.dumps({"sweep": {"name": "test", "id": "earlier"}}))
    summary = run_sweep(params)
    rows, best = read_outputs(params)
    by_objective = {row["objective"]: row for row in rows}
    assert summary["failed"] == 1 and summary["without_model"] == ["diverging"]
    assert by_objective["good"]["status"] == "COMPLETED"
    failed = by_objective["diverging"]
    assert failed["status"] == "FAILED" and "training diverged at iteration 2" in failed["error"]
    assert list(best["objectives"]) == ["good"] and (stale / "best.pt").read_bytes() == tiny_checkpoint.read_bytes()
    trained = find_trained_objectives(params.models_dir)  # what evaluate scores: this sweep's models only
    assert [objective.name for objective in trained] == ["good"]
    assert trained[0].sweep == {"name": "test", "id": summary["sweep_id"]} != {"name": "test", "id": "earlier"}
    assert objectives_without_model(params.models_dir, trained) == ["diverging"]
    runs = child_runs(params, summary["parent_run_id"])
    run = runs[failed["trial_id"]]
    assert run.info.status == "FAILED" and "training diverged" in run.data.tags["error"]
    assert run.data.tags["resumed_from_iteration"] == "0"  # the retry continued the first attempt's run
    good = runs[by_objective["good"]["trial_id"]]
    assert good.info.end_time <= run.info.start_time  # max_concurrent 1: one trial after the other


def test_optuna_with_repeated_seeds_scores_configurations_by_their_mean(tiny_data, tmp_path):
    params = sweep_params(tiny_data, tmp_path, {
        "objectives": {"l1": {"loss": {"terms": {"l1": 1.0}}}}, "search": "optuna", "seeds": 2, "num_samples": 2,
        "space": {"l1": {"train.lr": {"loguniform": [3e-4, 3e-3]}}}, "reports": 2}, tracking=False)
    summary = run_sweep(params)
    rows, best = read_outputs(params)
    assert len(rows) == 4 and summary["parent_run_id"] is None
    by_lr: dict[str, list[dict]] = {}
    for row in rows:
        by_lr.setdefault(row["train.lr"], []).append(row)
    assert sorted(sorted(row["seed"] for row in seeds) for seeds in by_lr.values()) == [["0", "1"], ["0", "1"]]
    means = {lr: sum(float(row["best/val/psnr"]) for row in seeds) / 2 for lr, seeds in by_lr.items()}
    winner = max(means, key=means.get)
    assert best["objectives"]["l1"]["values"] == {"train.lr": float(winner)}
    assert best["objectives"]["l1"]["mean"] == pytest.approx(means[winner])
    assert sorted(path.name for path in (Path(params.models_dir) / "l1" / "seeds").iterdir()) == ["0.pt", "1.pt"]


def test_a_two_worker_data_parallel_trial_trains_and_reports(tiny_data, tmp_path):
    params = sweep_params(tiny_data, tmp_path, {"objectives": {"l1": {"loss": {"terms": {"l1": 1.0}}}},
                                                "resources": {"workers": 2, "cpu": 1}, "reports": 2})
    summary = run_sweep(params)
    rows, best = read_outputs(params)
    assert summary["failed"] == 0 and [row["status"] for row in rows] == ["COMPLETED"]
    checkpoint = load_checkpoint(Path(params.models_dir) / "l1" / "best.pt")
    assert checkpoint["iteration"] in (6, 12)
    assert checkpoint["best"]["value"] == pytest.approx(best["objectives"]["l1"]["mean"])
    run = child_runs(params, summary["parent_run_id"])[rows[0]["trial_id"]]
    client = mlflow.MlflowClient(params.tracking.uri)
    assert [m.step for m in client.get_metric_history(run.info.run_id, "val/psnr")] == [6, 12]
