"""Two nodes that share no disk, rehearsed on one host: a moto S3 server, an MLflow server with
proxied artifacts in the same bucket, a Ray head and a Ray worker node started in its own mount
namespace in which the project and the driver's folders are empty tmpfs mounts. The sweep's trials
run on the worker (the head's CPU is held by a placeholder actor) and reach their data, checkpoints
and MLflow runs only through the two servers; then the worker is killed mid-trial and the trial goes
on from its checkpoint on the head. Needs root (``unshare -m``)."""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

import mlflow
import pytest

from pipeline.config import CODE_ROOT
from pipeline.params_file import validate
from pipeline.report.evaluate import evaluate_all
from pipeline.tune.storage import Storage
from pipeline.tune.sweep import run_sweep
from tests.s3_server import CREDENTIALS, free_port, s3_server, wait_for_port
from tests.tune.processes import end_session, session_members
from tests.tune.sweep_params import sweep_params

BUCKET = "sweeps"
WORKER_RESOURCE = "isolated_worker"


def _isolation_refused() -> str | None:
    if os.geteuid() != 0:
        return "a mount namespace (`unshare -m`) needs root"
    if shutil.which("unshare") is None:
        return "util-linux's `unshare` is not installed"
    probe = subprocess.run(["unshare", "-m", "--propagation", "private", "true"], capture_output=True, text=True,
                           timeout=30)
    return f"`unshare -m` is refused here ({probe.stderr.strip()})" if probe.returncode else None


pytestmark = [pytest.mark.slow, pytest.mark.skipif(_isolation_refused() is not None,
                                                   reason=str(_isolation_refused()))]


def wait_for(condition, timeout: float, what: str, every: float = 0.3) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(every)


@contextmanager
def started(command: list[str], port: int | None, what: str, env: dict[str, str] | None = None):
    """A server in its own session (waited for on ``port``); every process of the session is killed after."""
    process = subprocess.Popen(command, env=env, start_new_session=True, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    try:
        if port is not None:
            wait_for_port(port, process, what, timeout=120)
        yield process
    finally:
        end_session(process.pid, grace=0)
        process.wait(timeout=30)


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status == 200
    except OSError:
        return False


def mlflow_server(root: Path, endpoint: str) -> tuple[list[str], int, dict[str, str]]:
    port = free_port()
    command = [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
               "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}",
               "--artifacts-destination", f"s3://{BUCKET}/mlartifacts"]
    return command, port, {**os.environ, "MLFLOW_S3_ENDPOINT_URL": endpoint}


def ray_head(temp: Path) -> tuple[list[str], int, dict[str, str]]:
    """One CPU; dead nodes are noticed within about 2 s (Ray's default is 30 s)."""
    port = free_port()
    command = [str(Path(sys.executable).parent / "ray"), "start", "--head", "--port", str(port), "--node-ip-address",
               "127.0.0.1", "--num-cpus", "1", "--include-dashboard", "false", "--temp-dir", str(temp), "--block"]
    env = {**os.environ, "RAY_health_check_period_ms": "500", "RAY_health_check_failure_threshold": "3",
           "RAY_health_check_timeout_ms": "500"}
    return command, port, env


def isolated_worker(address: str, root: Path, hidden: list[Path]) -> tuple[list[str], dict[str, str]]:
    """``ray start`` in a new mount namespace over empty tmpfs mounts on ``hidden``, with its own copy of
    the code (``root/code``), the virtual environment bound at ``root/venv`` (bound before the folder
    holding it is hidden), its own temporary folder and the token and AWS credentials in its environment."""
    shutil.copytree(CODE_ROOT / "pipeline", root / "code" / "pipeline", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("venv", "tmp", "ray"):
        (root / name).mkdir()
    python = root / "venv" / "bin" / Path(sys.executable).name
    script = " && ".join([f"mount --bind {sys.prefix} {root / 'venv'}",
                          *(f"mount -t tmpfs -o size=64m tmpfs {folder}" for folder in hidden),
                          f"exec {python} -m ray.scripts.scripts start --address {address} "
                          f"--node-ip-address 127.0.0.1 --num-cpus 1 --resources '{{\"{WORKER_RESOURCE}\": 1}}' "
                          f"--temp-dir {root / 'ray'} --block"])
    token = Path(os.environ["RAY_AUTH_TOKEN_PATH"]).read_text().strip()
    env = {"PATH": f"{root / 'venv' / 'bin'}:/usr/bin:/bin", "HOME": str(root / "tmp"), "TMPDIR": str(root / "tmp"),
           "PYTHONPATH": str(root / "code"), "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": token, **CREDENTIALS}
    return ["unshare", "-m", "--propagation", "private", "sh", "-c", script], env


def trial_pids(folder: Storage, trial: str) -> list[int]:
    """The process id of each report of a trial (Tune's ``result.json`` in the bucket)."""
    lines = folder.read_bytes(f"{trial}/result.json").decode().splitlines()
    return [json.loads(line)["pid"] for line in lines if line.strip()]


def test_a_sweep_on_nodes_that_share_no_disk(tiny_data, tmp_path):
    started_at = time.monotonic()
    hidden = [CODE_ROOT, tmp_path]  # the project and every folder of the driver (data, results, models)
    worker_root = Path(tempfile.mkdtemp(prefix="srw", dir="/tmp"))  # short: Ray's socket paths stay < 108 bytes
    head_temp = Path(tempfile.mkdtemp(prefix="srh", dir="/tmp"))
    with s3_server(BUCKET) as endpoint:
        mlflow_command, mlflow_port, mlflow_env = mlflow_server(tmp_path, endpoint)
        head_command, head_port, head_env = ray_head(head_temp)
        with started(mlflow_command, None, "mlflow server", mlflow_env), \
                started(head_command, head_port, "the Ray head", head_env):
            try:
                _rehearse(tiny_data, tmp_path, endpoint, f"http://127.0.0.1:{mlflow_port}",
                          f"127.0.0.1:{head_port}", worker_root, hidden,
                          lambda: wait_for(lambda: _answers(f"http://127.0.0.1:{mlflow_port}/health"), 180,
                                           "mlflow server to answer"))
            finally:
                import ray

                ray.shutdown()
                if (worker_root / "venv").is_dir():
                    (worker_root / "venv").rmdir()  # only ever an empty mount point here: fails rather than recurse
                shutil.rmtree(worker_root, ignore_errors=True)
                shutil.rmtree(head_temp, ignore_errors=True)
    print(f"rehearsal: {time.monotonic() - started_at:.1f} s")


def _rehearse(tiny_data, tmp_path: Path, endpoint: str, tracking: str, address: str, worker_root: Path,
              hidden: list[Path], tracking_ready: Callable[[], None]) -> None:
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    data = sweep_params(tiny_data, tmp_path, {
        # as long as each other: the sweep starts the costlier first (pipeline.tune.cost), and l1 must run first
        "objectives": {"l1": {"train": {"iterations": 800}}, "l2": {"loss": {"terms": {"l2": 1.0}}, "train": {"iterations": 800}}},
        "reports": 4, "max_concurrent": 1, "storage_path": f"s3://{BUCKET}/rehearsal",
        "storage_endpoint": endpoint, "ray": {"address": address}}).model_dump(mode="json")
    data["tracking"].update(uri=tracking, log_model=True)
    data["evaluate"] = {"scales": [2], "benchmarks": ["Tiny"], "tile": 24, "tile_overlap": 4, "crop_size": 24,
                        "device": "cpu"}
    params = validate(data)

    class Placeholder:
        def ready(self) -> bool:
            return True

    ray.init(address=address, logging_level="WARNING", log_to_driver=False)  # the driver's node: the head
    head = ray.get_runtime_context().get_node_id()
    hold = ray.remote(num_cpus=1)(Placeholder).options(
        scheduling_strategy=NodeAffinitySchedulingStrategy(head, soft=False)).remote()
    ray.get(hold.ready.remote(), timeout=60)  # the head's CPU is taken: trials can only start on the worker
    worker_command, worker_env = isolated_worker(address, worker_root, hidden)
    with started(worker_command, None, "the isolated Ray worker", worker_env) as worker:
        wait_for(lambda: ray.cluster_resources().get(WORKER_RESOURCE) == 1, 120, "the worker node to join")
        tracking_ready()  # the slowest to start (about 10 s on an idle machine)
        folder = Storage(f"s3://{BUCKET}/rehearsal/test", endpoint)
        on_worker: set[int] = set()
        failures: list[BaseException] = []

        def kill_worker_mid_trial() -> None:
            """Once l2's second checkpoint is in the bucket: kill every process of the worker node, free the head.

            Not the first: a trial uploads a checkpoint before its report reaches the driver, so a kill in
            between restarts the trial from scratch (a correct run, but not the resume this test checks);
            the second report is only made after the driver took the first, whose checkpoint it then knows.
            """
            try:
                wait_for(lambda: any("-l2-seed0/checkpoint_000001/" in name for name in folder.files()), 300,
                         "l2's second checkpoint")
                on_worker.update(session_members(worker.pid))
                for pid in on_worker:
                    os.kill(pid, signal.SIGKILL)
                ray.kill(hold)
            except BaseException as error:  # noqa: BLE001 - reported by the test's thread
                failures.append(error)

        killer = threading.Thread(target=kill_worker_mid_trial, daemon=True)
        killer.start()
        summary = run_sweep(params)
        killer.join(timeout=60)
        assert not failures and on_worker
    _check_outputs(params, summary, folder, on_worker)
    # the worker's copy of the published data, and the image store it built from it, in its own temporary folder
    copies = list((worker_root / "tmp" / "srloss-data").glob("*/published.json"))
    assert len(copies) == 1 and list(copies[0].parent.glob("store/bicubic/x2/train/*/pairs.u8"))


def _check_outputs(params, summary, folder: Storage, on_worker: set[int]) -> None:
    assert summary["trials"] == 2 and summary["failed"] == 0
    rows = {row["objective"]: row for row in csv.DictReader((Path(params.results_dir) / "sweep" / "trials.csv").open())}
    assert {row["status"] for row in rows.values()} == {"COMPLETED"}
    trials = {objective: f"{row['trial_id']}-{objective}-seed0" for objective, row in rows.items()}
    # where the trials ran: l1 wholly on the worker; l2 was finished on the head, continuing from the
    # checkpoint its first attempt wrote on the worker (the kill waited for it; MLflow's resumed tag below)
    assert set(trial_pids(folder, trials["l1"])) <= on_worker
    assert trial_pids(folder, trials["l2"])[-1] not in on_worker
    # checkpoints, results and the published training data are in the bucket
    files = folder.files()
    for trial in trials.values():
        assert any(name.startswith(f"{trial}/checkpoint_") and name.endswith("/best.pt") for name in files)
        assert f"{trial}/result.json" in files
    assert any(name.endswith("/published.json") for name in Storage(f"s3://{BUCKET}/rehearsal/data",
                                                                    folder.endpoint).files())
    # models/ exported on the driver
    for objective in ("l1", "l2"):
        info = json.loads((Path(params.models_dir) / objective / "info.json").read_text())
        assert (Path(params.models_dir) / objective / "best.pt").stat().st_size > 0
        assert info["run_id"] == rows[objective]["mlflow_run_id"]
    _check_mlflow(params, summary, rows)
    # evaluate, on the driver, scores every exported model
    scores = json.loads(Path(evaluate_all(params)["scores"]).read_text())
    assert sorted(scores["Tiny"]["x2"]) == ["bicubic", "l1", "l2"]
    assert all(scores["Tiny"]["x2"][name]["psnr"]["mean"] > 0 for name in ("bicubic", "l1", "l2"))


def _check_mlflow(params, summary, rows) -> None:
    """One child run per trial (l2's continued, not duplicated), every artifact readable from the driver."""
    client = mlflow.MlflowClient(params.tracking.uri)
    experiment = client.get_experiment_by_name(params.tracking.experiment)
    assert experiment.artifact_location.startswith("mlflow-artifacts:/")
    children = client.search_runs([experiment.experiment_id],
                                  f"tags.mlflow.parentRunId = '{summary['parent_run_id']}'")
    assert sorted(run.data.tags["sweep.objective"] for run in children) == ["l1", "l2"]
    assert {run.info.run_id for run in children} == {row["mlflow_run_id"] for row in rows.values()}
    assert all(run.info.status == "FINISHED" for run in children)
    resumed = {run.data.tags["sweep.objective"]: run.data.tags.get("resumed_from_iteration") for run in children}
    assert resumed["l1"] is None and int(resumed["l2"]) > 0
    for run in [*children, client.get_run(summary["parent_run_id"])]:
        names = _artifact_files(client, run.info.run_id)
        for name in names:
            assert Path(client.download_artifacts(run.info.run_id, name)).stat().st_size > 0
        if run in children:
            assert any(name.startswith("images/") for name in names) and "params.yaml" in names
            assert any(name.startswith("checkpoints/") for name in names)
    models = client.search_logged_models(experiment_ids=[experiment.experiment_id])
    assert sorted(model.source_run_id for model in models) == sorted(run.info.run_id for run in children)
    for model in models:
        assert Path(mlflow.artifacts.download_artifacts(artifact_uri=model.artifact_location,
                                                        tracking_uri=params.tracking.uri), "MLmodel").is_file()


def _artifact_files(client: mlflow.MlflowClient, run_id: str, path: str | None = None) -> list[str]:
    names = []
    for entry in client.list_artifacts(run_id, path):
        names += _artifact_files(client, run_id, entry.path) if entry.is_dir else [entry.path]
    return names
