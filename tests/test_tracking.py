"""MLflow tracking: store resolution, the fail-fast check, and runs logged by the callback to a local
SQLite store, to a real ``mlflow server``, and from a tiny ``fit``."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import mlflow
import numpy as np
import pytest
import torch
import yaml

from pipeline.config import CODE_ROOT, Params
from pipeline.errors import PipelineError
from pipeline.inference import load_super_resolver, upscale_image
from pipeline.params_file import validate
from pipeline.tracking.callback import MLflowCallback, run_params
from pipeline.tracking.images import LABEL_PIXELS, labelled_strip, side_by_side
from pipeline.tracking.store import check_tracking, ensure_experiment, find_run, flatten_params, start_run, tracking_uri
from pipeline.tracking.tags import GIT_STATE_EXCLUDED, git_tags, objective_tags
from pipeline.train.callbacks import RunContext, Sample, TrainResult
from pipeline.train.checkpoint import load_checkpoint, restore_networks
from pipeline.train.loop import fit
from tests.conftest import CrashAtValidation

HTTP_ENV = ("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "MLFLOW_HTTP_REQUEST_TIMEOUT", "MLFLOW_TRACKING_URI")


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> str:
    """One SQLite store for the module (creating its tables takes seconds), in a folder made on first use."""
    folder = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{folder / 'not' / 'yet' / 'mlflow.db'}"
    ensure_experiment(uri, "warm-up", folder / "mlartifacts")
    return uri


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def tracked_params(uri: str, experiment: str, root: Path, **tracking) -> Params:
    return validate({"model": {"name": "edsr", "args": {"n_blocks": 1, "n_feats": 8}},
                     "train": {"scale": 2, "lr": 3e-4, "iterations": 20},
                     "tracking": {"uri": uri, "experiment": experiment, **tracking}}).resolved(root)


def run_context(params: Params, checkpoint: Path) -> RunContext:
    net, objective = restore_networks(load_checkpoint(checkpoint))
    manifest = {"hr": {"train/a.png": "0" * 64}, "lr": {"x2/a.png": "1" * 64}}
    return RunContext(params=params, run_dir=checkpoint.parent.parent, model=net, objective=objective,
                      device=torch.device("cpu"), data_manifest=manifest)


def samples(count: int) -> list[Sample]:
    rng = np.random.default_rng(0)
    return [Sample(f"img{i}", *(rng.integers(0, 256, (12, 10, 3), dtype=np.uint8) for _ in range(3)))
            for i in range(count)]


def log_a_run(callback: MLflowCallback, ctx: RunContext, checkpoint: Path) -> TrainResult:
    """Drive the callback the way ``fit`` does for a 20-iteration run validated at 10 and 20."""
    callback.on_start(ctx)
    for step in range(5, 21, 5):
        callback.on_train_log(step, {"train/l1": 1.0 / step, "train/total": 1.0 / step, "train/lr": 3e-4})
        if step % 10 == 0:
            callback.on_validation(step, {"val/psnr": 20.0 + step, "val/bicubic_psnr": 25.0}, samples(3))
            callback.on_checkpoint(step, checkpoint, True)
    result = TrainResult(iterations=20, best_metric=40.0, best_iteration=20, final_metrics={"val/psnr": 40.0},
                         last_checkpoint=checkpoint, best_checkpoint=checkpoint, run_dir=ctx.run_dir)
    callback.on_end(result)
    return result


def test_tracking_uri_prefers_params_then_environment_then_a_local_store(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    params = validate({}).resolved(tmp_path)
    assert tracking_uri(params) == f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://tracker:5000")
    assert tracking_uri(params) == "http://tracker:5000"
    params.tracking.uri = "sqlite:////elsewhere/runs.db"
    assert tracking_uri(params) == "sqlite:////elsewhere/runs.db"


def test_an_unreachable_server_fails_fast_with_the_fix():
    port = free_port()
    started = time.monotonic()
    with pytest.raises(PipelineError, match=rf"server http://127.0.0.1:{port} is unreachable .*tracking.enabled=false"):
        check_tracking(f"http://127.0.0.1:{port}")
    assert time.monotonic() - started < 5


def test_local_stores_need_no_server(tmp_path):
    check_tracking(f"sqlite:///{tmp_path / 'mlflow.db'}")


def test_flatten_params_uses_dotted_keys_json_lists_and_cuts_long_values():
    flat = flatten_params({"train": {"lr": 0.0002, "betas": [0.9, 0.99], "scheduler": {"name": "cosine"}},
                           "model": {"args": {}}, "note": "x" * 7000, "seed": None})
    assert flat["train.lr"] == "0.0002" and flat["train.betas"] == "[0.9, 0.99]"
    assert flat["train.scheduler.name"] == "cosine" and flat["model.args"] == "{}" and flat["seed"] == "None"
    assert len(flat["note"]) == 6000 and flat["note"].endswith("...")


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_git_tags_name_the_commit_and_whether_the_tree_is_dirty(tmp_path):
    assert git_tags(tmp_path) == {}  # not a repository
    repo = tmp_path / "repo"
    repo.mkdir()
    for command in (["init", "-q"], ["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "--allow-empty",
                                     "-m", "first"]):
        subprocess.run(["git", *command], cwd=repo, check=True)
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, check=True, capture_output=True, text=True)
    assert git_tags(repo) == {"mlflow.source.git.commit": head.stdout.strip(), "git.dirty": "false"}
    (repo / "dvc.lock").write_text("schema: '2.0'\n")  # written by `dvc repro` itself: not a code change
    (repo / "results").mkdir()
    (repo / "results" / "metrics.json").write_text("{}\n")
    (repo / "results" / "curves.csv").write_text("objective,step,metric,value\n")
    assert git_tags(repo)["git.dirty"] == "false"
    (repo / "new.py").write_text("x = 1\n")
    tags = git_tags(repo)
    assert tags["git.dirty"] == "true" and tags["git.dirty_files"] == "new.py"


def test_every_report_the_evaluate_stage_writes_is_excluded_from_the_dirty_check():
    """A run's own uncached outputs (committed with dvc.lock) must not stamp its reports "with uncommitted changes"."""
    stage = yaml.safe_load((CODE_ROOT / "dvc.yaml").read_text())["stages"]["evaluate"]
    written = [next(iter(out)).replace("${results_dir}", "results") for out in stage["outs"] + stage.get("metrics", [])
               if isinstance(out, dict) and next(iter(out.values())).get("cache") is False]
    assert len(written) >= 8 and set(written) <= set(GIT_STATE_EXCLUDED)


def test_objective_tags_name_the_sweep_objective_and_its_kind():
    assert objective_tags("regression", "grad2") == {"objective": "grad2", "objective.kind": "regression"}
    assert objective_tags("tlw") == {"objective": "tlw", "objective.kind": "tlw"}


def test_a_new_experiment_opens_in_the_model_training_view_and_an_old_one_is_tagged(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = mlflow.MlflowClient(uri)
    old = client.create_experiment("old", artifact_location=(tmp_path / "art").as_uri())
    assert ensure_experiment(uri, "old") == old
    new = ensure_experiment(uri, "new", tmp_path / "art")
    for experiment_id in (old, new):
        assert client.get_experiment(experiment_id).tags["mlflow.experimentKind"] == "custom_model_development"


def test_side_by_side_keeps_each_image_in_its_columns():
    a, b = np.zeros((4, 3, 3), np.uint8), np.full((4, 5, 3), 7, np.uint8)
    strip = side_by_side(a, b, gap=2)
    assert strip.shape == (4, 10, 3)
    assert (strip[:, :3] == 0).all() and (strip[:, 3:5] == 255).all() and (strip[:, 5:] == 7).all()


def test_a_labelled_strip_enlarges_each_image_under_a_band_with_its_name():
    a, b = np.zeros((4, 3, 3), np.uint8), np.full((4, 5, 3), 7, np.uint8)
    strip = labelled_strip([("bicubic", a), ("HR", b)], zoom=2, gap=2)
    band = strip.shape[0] - 8
    assert strip.shape == (band + 8, 6 + 2 + 10, 3) and band >= 14
    assert (strip[band:, :6] == 0).all() and (strip[:, 6:8] == 255).all() and (strip[band:, 8:] == 7).all()
    assert (strip[:band, :6] < 128).any() and (strip[:band, 8:] < 128).any()  # dark text on each white band


def test_an_experiment_whose_artifact_folder_moved_away_is_refused_with_the_fix(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    mlflow.MlflowClient(uri).create_experiment("moved", artifact_location=(tmp_path / "old" / "art").as_uri())
    with pytest.raises(PipelineError, match="no longer exists .was the project moved.*tracking.experiment"):
        ensure_experiment(uri, "moved")
    (tmp_path / "old").mkdir()
    assert ensure_experiment(uri, "moved")


def test_ensure_experiment_is_idempotent_and_refuses_a_deleted_one(store, tmp_path):
    first = ensure_experiment(store, "twice", tmp_path / "art")
    assert ensure_experiment(store, "twice", tmp_path / "art") == first
    assert mlflow.MlflowClient(store).get_experiment(first).artifact_location == (tmp_path / "art").as_uri()
    mlflow.MlflowClient(store).delete_experiment(first)
    with pytest.raises(PipelineError, match="is deleted .*mlflow experiments restore"):
        ensure_experiment(store, "twice")


def test_a_logged_run_holds_params_tags_metrics_images_checkpoints_and_the_model(store, tiny_checkpoint, tmp_path,
                                                                                monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    params = tracked_params(store, "local", tmp_path, log_images=2)
    ctx = run_context(params, tiny_checkpoint)
    callback = MLflowCallback(run_name="tiny", tags={"purpose": "test"})
    log_a_run(callback, ctx, tiny_checkpoint)
    assert os.environ.get("MLFLOW_TRACKING_URI") is None  # log_model's process-wide URI was restored
    client = mlflow.MlflowClient(store)
    run = client.get_run(callback.run_id)
    assert run.info.status == "FINISHED" and run.info.run_name == "tiny"
    assert run.data.params["train.lr"] == "0.0003" and run.data.params["model.args.n_feats"] == "8"
    assert run.data.params["tracking.experiment"] == "local"
    assert not any(key.startswith("sweep.") for key in run.data.params)  # the sweep's keys are the parent's
    assert set(run_params(params)) == set(params.model_dump()) - {"sweep"}
    hr_manifest = Path(client.download_artifacts(run.info.run_id, "data/hr_manifest.json", str(tmp_path)))
    assert json.loads(hr_manifest.read_text()) == ctx.data_manifest["hr"]
    assert run.data.tags["data.hr.sha256"] == hashlib.sha256(hr_manifest.read_bytes()).hexdigest()
    assert run.data.tags["purpose"] == "test" and run.data.tags["model"] == "edsr"
    assert [(m.step, m.value) for m in client.get_metric_history(run.info.run_id, "train/total")] == [
        (5, 0.2), (10, 0.1), (15, 1 / 15), (20, 0.05)]
    assert [m.step for m in client.get_metric_history(run.info.run_id, "val/psnr")] == [10, 20]
    assert run.data.metrics["final/val/psnr"] == 40.0 and run.data.metrics["best/iteration"] == 20
    assert run.data.metrics["best/val/psnr"] == 40.0

    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"params.yaml", "data", "checkpoints", "images"} <= artifacts
    assert {a.path for a in client.list_artifacts(run.info.run_id, "data")} == {"data/hr_manifest.json",
                                                                                 "data/lr_manifest.json"}
    images = [a.path for a in client.list_artifacts(run.info.run_id, "images") if a.path.endswith(".png")]
    assert sorted(path.split("+")[0] for path in images) == ["images/bicubic-sr-hr~img0"] * 2 + [
        "images/bicubic-sr-hr~img1"] * 2
    local_image = Path(client.download_artifacts(run.info.run_id, images[0], str(tmp_path)))
    assert mlflow.Image(str(local_image)).to_array().shape == (LABEL_PIXELS + 6 + 2 * 12, 3 * 2 * 10 + 2 * 4, 3)  # zoom 2

    monkeypatch.setenv("MLFLOW_TRACKING_URI", store)
    model = mlflow.pyfunc.load_model(f"runs:/{run.info.run_id}/regression-seed0")  # imports pipeline.mlflow_model
    assert model.metadata.flavors["python_function"]["loader_module"] == "pipeline.mlflow_model"
    logged = mlflow.get_logged_model(model.model_id)
    assert logged.name == "regression-seed0" and logged.params["model.name"] == "edsr"
    assert logged.params["model.args.n_feats"] == "8" and logged.params["loss.objective"] == "regression"
    reference = load_super_resolver(tiny_checkpoint)
    lr = torch.rand(1, 3, 11, 9, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        assert torch.equal(torch.from_numpy(model.predict(lr.numpy())), reference(lr))
    image = np.random.default_rng(4).integers(0, 256, (20, 17, 3), dtype=np.uint8)
    resolver = load_super_resolver(f"runs:/{run.info.run_id}/regression-seed0", tracking_uri=store)
    np.testing.assert_array_equal(upscale_image(resolver, image), upscale_image(reference, image))
    version = mlflow.register_model(f"runs:/{run.info.run_id}/regression-seed0", "tiny-sr").version
    registered = load_super_resolver(f"models:/tiny-sr/{version}", tracking_uri=store)
    np.testing.assert_array_equal(upscale_image(registered, image), upscale_image(reference, image))


def test_tracking_failures_mid_run_warn_and_leave_checkpoints(store, tiny_checkpoint, tmp_path, monkeypatch, caplog):
    ctx = run_context(tracked_params(store, "flaky", tmp_path), tiny_checkpoint)
    callback = MLflowCallback(flush_seconds=0)
    callback.on_start(ctx)
    run_id = callback.run_id

    def refuse(*args, **kwargs):
        raise ConnectionError("server went away")

    monkeypatch.setattr(mlflow.MlflowClient, "log_batch", refuse)
    with caplog.at_level(logging.WARNING):
        callback.on_train_log(5, {"train/total": 0.5})
        callback.on_validation(10, {"val/psnr": 30.0}, samples(1))
        callback.on_end(TrainResult(10, 30.0, 10, {}, tiny_checkpoint, tiny_checkpoint, ctx.run_dir))
    assert caplog.text.count("MLflow tracking failed") == 1 and "server went away" in caplog.text
    assert callback.run_id is None and tiny_checkpoint.is_file()
    assert mlflow.MlflowClient(store).get_run(run_id).data.metrics == {}


def test_disabled_tracking_logs_nothing(tiny_checkpoint, tmp_path):
    callback = MLflowCallback()
    params = tracked_params("http://127.0.0.1:1", "off", tmp_path, enabled=False)
    callback.on_start(run_context(params, tiny_checkpoint))
    callback.on_train_log(1, {"train/total": 1.0})
    assert callback.run_id is None


@pytest.fixture
def mlflow_server(tmp_path):
    """A real ``mlflow server`` on a free local port, stopped (with its workers) at teardown."""
    port = free_port()
    command = [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
               "--workers", "1", "--backend-store-uri", f"sqlite:///{tmp_path / 'server.db'}",
               "--artifacts-destination", str(tmp_path / "server-artifacts")]
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    uri = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    try:
        while True:
            try:
                urllib.request.urlopen(f"{uri}/health", timeout=1).close()
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    pytest.skip(f"mlflow server did not start within 60 s (exit code {server.poll()})")
                time.sleep(0.5)
        yield uri, server
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


@pytest.mark.slow
def test_runs_nest_under_a_parent_on_a_real_server_and_survive_its_loss(mlflow_server, tiny_checkpoint, tmp_path,
                                                                        monkeypatch, caplog):
    uri, server = mlflow_server
    for name in HTTP_ENV:
        monkeypatch.delenv(name, raising=False)
    check_tracking(uri)
    params = tracked_params(uri, "remote", tmp_path, log_model=False)
    parent = start_run(uri, ensure_experiment(uri, "remote"), run_name="sweep")
    ctx = run_context(params, tiny_checkpoint)
    child = MLflowCallback(parent_run_id=parent, run_name="trial-0")
    log_a_run(child, ctx, tiny_checkpoint)
    client = mlflow.MlflowClient(uri)
    run = client.get_run(child.run_id)
    assert run.data.tags["mlflow.parentRunId"] == parent and run.info.status == "FINISHED"
    assert run.data.metrics["val/psnr"] == 40.0
    assert {a.path for a in client.list_artifacts(run.info.run_id, "checkpoints")} == {"checkpoints/best.pt"}
    assert os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == "2"

    lost = MLflowCallback(flush_seconds=0)
    lost.on_start(ctx)
    os.killpg(server.pid, signal.SIGTERM)
    server.wait(timeout=30)
    started = time.monotonic()
    with caplog.at_level(logging.WARNING):
        lost.on_train_log(5, {"train/total": 0.5})
        lost.on_end(TrainResult(5, None, None, {}, tiny_checkpoint, None, ctx.run_dir))
    assert "MLflow tracking failed while logging training metrics" in caplog.text
    assert time.monotonic() - started < 30 and tiny_checkpoint.is_file()


@pytest.mark.slow
def test_fit_with_the_callback_logs_a_loadable_model(tiny_data, store, tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    params = tiny_data.model_copy(update={"tracking": tiny_data.tracking.model_copy(
        update={"enabled": True, "uri": store, "experiment": "fit", "artifact_location": tmp_path / "art"})})
    callback = MLflowCallback()
    result = fit(params, tmp_path / "run", callbacks=[callback])
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store)
    client = mlflow.MlflowClient(store)
    run = client.get_run(callback.run_id)
    assert run.info.status == "FINISHED"
    assert [m.step for m in client.get_metric_history(run.info.run_id, "val/psnr")] == [6, 12]
    assert run.data.params["train/iterations"] == "12"  # what train.budget resolved to
    assert run.data.metrics["val/psnr"] == pytest.approx(result.final_metrics["val/psnr"])
    model = load_super_resolver(f"runs:/{run.info.run_id}/{params.loss.objective}-seed{params.seed}")
    reference = load_super_resolver(result.best_checkpoint)
    lr = torch.rand(1, 3, 12, 12, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        assert torch.equal(model(lr), reference(lr))


def tracked_tiny(tiny_data: Params, store: str, tmp_path: Path, experiment: str) -> Params:
    return tiny_data.model_copy(update={"tracking": tiny_data.tracking.model_copy(
        update={"enabled": True, "uri": store, "experiment": experiment, "artifact_location": tmp_path / "art",
                "log_model": False})})


def test_a_diverging_fit_ends_its_run_failed_with_the_error(tiny_data, store, tmp_path):
    params = tracked_tiny(tiny_data, store, tmp_path, "diverging")
    params.train.lr = 1e10
    callback = MLflowCallback()
    with pytest.raises(PipelineError, match="training diverged"):
        fit(params, tmp_path / "run", callbacks=[callback])
    client = mlflow.MlflowClient(store)
    run = client.get_run(callback.run_id)
    assert run.info.status == "FAILED"
    assert run.data.tags["error"].startswith("PipelineError: training diverged at iteration 2")
    error_text = Path(client.download_artifacts(callback.run_id, "error.txt", str(tmp_path))).read_text()
    assert "Traceback" in error_text and "training diverged" in error_text


def test_ctrl_c_ends_the_run_killed(tiny_checkpoint, store, tmp_path):
    callback = MLflowCallback()
    callback.on_start(run_context(tracked_params(store, "interrupted", tmp_path), tiny_checkpoint))
    callback.on_failure(KeyboardInterrupt())
    run = mlflow.MlflowClient(store).get_run(callback.run_id)
    assert run.info.status == "KILLED" and run.data.tags["stopped_by"] == "KeyboardInterrupt"
    assert "error" not in run.data.tags


def test_a_checkpoint_flushes_the_buffered_training_metrics(store, tiny_checkpoint, tmp_path):
    """What a checkpoint covers is in MLflow when it is written, so a run killed with -9 and resumed
    from it loses no train/* point."""
    callback = MLflowCallback(flush_seconds=3600)
    callback.on_start(run_context(tracked_params(store, "flush", tmp_path), tiny_checkpoint))
    client = mlflow.MlflowClient(store)
    for step in (1, 2, 3):
        callback.on_train_log(step, {"train/total": float(step)})
    assert client.get_metric_history(callback.run_id, "train/total") == []  # buffered
    callback.on_checkpoint(3, tiny_checkpoint, False)
    assert [(m.step, m.value) for m in client.get_metric_history(callback.run_id, "train/total")] == [
        (1, 1.0), (2, 2.0), (3, 3.0)]


def test_a_resumed_fit_continues_its_run_and_a_new_fit_starts_another(tiny_data, store, tmp_path):
    params = tracked_tiny(tiny_data, store, tmp_path, "resumed")
    first = MLflowCallback()
    with pytest.raises(KeyboardInterrupt):
        fit(params, tmp_path / "run", callbacks=[first, CrashAtValidation(6)])
    client = mlflow.MlflowClient(store)
    assert client.get_run(first.run_id).info.status == "KILLED"
    assert json.loads((tmp_path / "run" / "mlflow_run.json").read_text())["run_id"] == first.run_id

    second = MLflowCallback()
    fit(params, tmp_path / "run", callbacks=[second], resume=tmp_path / "run" / "checkpoints" / "last.pt")
    assert second.run_id == first.run_id
    run = client.get_run(first.run_id)
    assert run.info.status == "FINISHED" and run.data.tags["resumed_from_iteration"] == "6"
    assert [m.step for m in client.get_metric_history(first.run_id, "val/psnr")] == [6, 12]
    experiment = client.get_experiment_by_name("resumed").experiment_id
    assert len(client.search_runs([experiment])) == 1

    third = MLflowCallback()
    fit(params, tmp_path / "run", callbacks=[third], overwrite=True)  # not a resume: a run of its own
    assert third.run_id != first.run_id and len(client.search_runs([experiment])) == 2


def test_continue_run_id_continues_that_run_and_find_run_finds_it_by_tags(tiny_checkpoint, store, tmp_path):
    params = tracked_params(store, "by-tag", tmp_path, log_model=False)
    ctx = run_context(params, tiny_checkpoint)
    first = MLflowCallback(tags={"sweep.trial_id": "abc_00001"})
    first.on_start(ctx)
    experiment = mlflow.MlflowClient(store).get_run(first.run_id).info.experiment_id
    assert find_run(store, experiment, {"sweep.trial_id": "abc_00001"}) == first.run_id
    assert find_run(store, experiment, {"sweep.trial_id": "abc_00002"}) is None
    again = MLflowCallback(continue_run_id=first.run_id)
    again.on_start(ctx)
    assert again.run_id == first.run_id
