"""The report and MLflow: run links, training curves from the child runs' metric histories, the
report logged to the sweep's parent run, and tracking failures that cost nothing but a warning."""

from __future__ import annotations

import csv
import json
import logging
import socket
import time

import mlflow
import pytest
from mlflow.entities import Metric

from pipeline.report.evaluate import evaluate_all
from pipeline.report import publish
from pipeline.report.run_store import RunStore, experiment_link, portable_uri, run_link, store_kind
from pipeline.tracking.store import HTTP_RETRY_DEFAULTS, ensure_experiment, start_run

from .conftest import study_params, write_info

ONE_BENCHMARK = {"scales": [2], "benchmarks": ["Tiny"], "tile": 24, "tile_overlap": 4, "device": "cpu"}


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_a_server_link_opens_the_run_page_in_the_model_training_view():
    assert run_link("http://mlflow.lab:5000/", "7", "0123456789abcdef") == (
        "[01234567](http://mlflow.lab:5000/#/experiments/7/runs/0123456789abcdef?workflowType=machine_learning)")
    assert experiment_link("http://mlflow.lab:5000/", "7") == (
        "http://mlflow.lab:5000/#/experiments/7?workflowType=machine_learning")


def test_a_store_is_named_relative_to_the_project_or_not_at_all(tmp_path, monkeypatch):
    project = tmp_path / "project"
    project.mkdir()
    assert portable_uri(f"sqlite:///{project / 'mlflow.db'}", project) == "sqlite:///mlflow.db"
    assert portable_uri(f"sqlite:///{project / 'stores' / 'a.db'}", project) == "sqlite:///stores/a.db"
    assert portable_uri(f"sqlite:///{tmp_path / 'mlflow.db'}", project) is None  # outside: a path on one machine
    assert portable_uri(f"file://{project / 'mlruns'}", project) == "mlruns"
    assert portable_uri(str(tmp_path / "mlruns"), project) is None
    assert portable_uri("http://mlflow.lab:5000", project) == "http://mlflow.lab:5000"
    assert portable_uri("postgresql://user:secret@db/mlflow", project) is None  # may hold credentials
    monkeypatch.chdir(project)
    assert portable_uri("sqlite:///mlflow.db", project) == "sqlite:///mlflow.db"  # relative: to the working folder
    assert [store_kind(u) for u in ("sqlite:///x.db", "mlruns", "postgresql://db/m")] == ["SQLite", "file", "postgresql"]


def test_the_report_names_the_default_store_as_a_reader_of_the_project_opens_it(study_copy, tmp_path, monkeypatch):
    params = study_params(study_copy, tracking={"enabled": True, "artifact_location": str(tmp_path / "mlartifacts")})
    store = type("Store", (), {"uri": f"sqlite:///{tmp_path / 'mlflow.db'}", "usable": True})()
    assert publish._tracking_note(params, store, None) == (
        "MLflow runs are in sqlite:///mlflow.db, experiment `srloss`; open them with "
        "`mlflow ui --backend-store-uri sqlite:///mlflow.db` in the project folder; each row names its run.")
    assert publish._tracking_note(params, store, "3").endswith(
        "in the project folder, then http://127.0.0.1:5000/#/experiments/3?workflowType=machine_learning "
        "(the model-training view); each row names its run.")


def test_a_server_that_is_down_still_gets_links_when_the_experiment_is_known(monkeypatch):
    for name, value in HTTP_RETRY_DEFAULTS.items():
        monkeypatch.setenv(name, value)
    uri = f"http://127.0.0.1:{_closed_port()}"
    store = RunStore(uri)
    assert not store.usable and "is unreachable" in store.problem
    assert store.link("0123456789abcdef", "7") == \
        f"[01234567]({uri}/#/experiments/7/runs/0123456789abcdef?workflowType=machine_learning)"
    assert store.link("0123456789abcdef") == "`01234567`"


def test_a_missing_local_store_is_a_problem_not_a_new_database(tmp_path):
    store = RunStore(f"sqlite:///{tmp_path / 'mlflow.db'}")
    assert not store.usable and "does not exist" in store.problem
    assert store.link("abc") == "`abc`" and store.history("abc") == [] and not store.log_files("abc", [], "x")
    assert not (tmp_path / "mlflow.db").exists()


def _log_history(client: mlflow.MlflowClient, run_id: str, offset: float) -> list[tuple[str, int, float]]:
    points = [("train/total", 3, 1.0 + offset), ("train/total", 6, 0.5 + offset), ("train/lr", 6, 1e-3),
              ("val/psnr", 6, 20.0 + offset), ("val/bicubic_psnr", 6, 30.0)]
    client.log_batch(run_id, metrics=[Metric(key, value, int(time.time() * 1000), step) for key, step, value in points])
    return [(key, step, value) for key, step, value in points]


def test_a_tracked_sweep_gets_run_ids_curves_and_the_report_in_its_parent_run(study_copy, tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    experiment = ensure_experiment(uri, "srloss", tmp_path / "mlartifacts")
    client = mlflow.MlflowClient(uri)
    parent = start_run(uri, experiment, "sweep")
    logged, children = {}, {}
    for offset, name in enumerate(("cs", "l1")):
        children[name] = start_run(uri, experiment, name, parent_run_id=parent)
        logged[name] = _log_history(client, children[name], offset)
    second_seed = start_run(uri, experiment, "l1-seed1", parent_run_id=parent)
    model = client.create_logged_model(experiment, source_run_id=second_seed, name="l1-seed1").model_id
    seeds = {"cs": [{"seed": 0, "run_id": children["cs"]}],
             "l1": [{"seed": 0, "run_id": children["l1"]}, {"seed": 1, "run_id": second_seed}]}
    for name in ("cs", "l1"):
        write_info(study_copy / "models" / name, {"objective": name, "run_id": children[name], "parent_run_id": parent,
                                                  "experiment_id": experiment, "tracking_uri": uri,
                                                  "seeds": seeds[name]})

    results = tmp_path / "results"
    summary = evaluate_all(study_params(study_copy, results_dir=str(results), evaluate=ONE_BENCHMARK,
                                        tracking={"enabled": True, "uri": uri}))

    assert summary["mlflow_parent_runs"] == [parent] and summary["training_curves"] == "written"
    uploaded = {item.path for item in client.list_artifacts(parent, "evaluate")}
    assert {"evaluate/metrics.json", "evaluate/scores.json", "evaluate/leaderboard.md", "evaluate/curves.csv",
            "evaluate/plots"} <= uploaded
    scores = json.loads((results / "scores.json").read_text())["Tiny"]["x2"]
    per_run = {run: client.get_run(run).data.metrics for run in (children["cs"], children["l1"], second_seed)}
    assert per_run[children["cs"]]["Tiny/x2/psnr"] == scores["cs"]["psnr"]["mean"]  # one model: its own score
    assert (per_run[children["l1"]]["Tiny/x2/ssim"] + per_run[second_seed]["Tiny/x2/ssim"]) / 2 == pytest.approx(
        scores["l1"]["ssim"]["mean"], abs=1e-12)
    assert per_run[children["l1"]]["Tiny/x2/psnr"] != per_run[second_seed]["Tiny/x2/psnr"]
    on_model = {metric.key: metric.value for metric in client.get_logged_model(model).metrics}
    assert on_model["Tiny/x2/psnr"] == per_run[second_seed]["Tiny/x2/psnr"]  # the logged model carries its scores
    assert client.get_run(parent).data.metrics["Tiny/x2/l1/psnr"] == round(scores["l1"]["psnr"]["mean"], 3)
    plots = {item.path.rsplit("/", 1)[1] for item in client.list_artifacts(parent, "evaluate/plots")}
    assert {"curves_cs.png", "curves_l1.png", "validation_psnr.png", "comparison_Tiny_x2.png", "psnr_x2.png"} <= plots
    with open(results / "curves.csv", newline="") as handle:
        rows = [(row["objective"], row["seed"], row["metric"], int(row["step"]), float(row["value"]))
                for row in csv.DictReader(handle)]
    assert sorted(rows) == sorted((name, "0", key, step, value) for name, points in logged.items()
                                  for key, step, value in points)  # seed 1 of l1 logged nothing
    leaderboard = (results / "leaderboard.md").read_text()
    assert str(tmp_path) not in leaderboard  # a path on this machine is no use to a reader of the report
    assert "MLflow runs are in a SQLite store outside the project (tracking.uri or $MLFLOW_TRACKING_URI)" in leaderboard
    assert f"| seed 0: `{children['l1'][:8]}`, seed 1: `{second_seed[:8]}` |" in leaderboard
    assert f"| `{children['cs'][:8]}` |" in leaderboard
    description = client.get_run(parent).data.tags["mlflow.note.content"]
    assert description == (results / "summary.md").read_text() and leaderboard.startswith(
        "# Leaderboard\n\n" + description.split("\n\nGenerated on ")[0])


def test_an_unreachable_server_costs_a_warning_and_keeps_every_file(study, tmp_path, monkeypatch, caplog):
    for name, value in HTTP_RETRY_DEFAULTS.items():
        monkeypatch.setenv(name, value)
    uri = f"http://127.0.0.1:{_closed_port()}"
    caplog.set_level(logging.WARNING)
    summary = evaluate_all(study_params(study, results_dir=str(tmp_path), evaluate=ONE_BENCHMARK,
                                        tracking={"enabled": True, "uri": uri}))
    assert f"the report cannot use MLflow: MLflow tracking server {uri} is unreachable" in caplog.text
    assert summary["mlflow_parent_runs"] == []
    assert (tmp_path / "metrics.json").is_file() and (tmp_path / "plots" / "comparison_Tiny_x2.png").is_file()
    assert f"MLflow could not be used while evaluating: MLflow tracking server {uri} is unreachable" in (
        tmp_path / "leaderboard.md").read_text()


def test_self_ensemble_rows_reach_mlflow_as_plus_names_not_a_dropped_batch(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    experiment = ensure_experiment(uri, "srloss", tmp_path / "mlartifacts")
    run = start_run(uri, experiment, "sweep")
    assert RunStore(uri).log_metrics(run, {"Tiny/x2/l1+/psnr": 30.5, "Tiny/x2/cs.argmax/psnr": 29.0})
    assert mlflow.MlflowClient(uri).get_run(run).data.metrics == {"Tiny/x2/l1-plus/psnr": 30.5,
                                                                  "Tiny/x2/cs.argmax/psnr": 29.0}
