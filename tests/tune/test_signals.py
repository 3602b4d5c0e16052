"""A sweep stopped by SIGTERM to its process group: Tune saves its trials, every MLflow run it
opened ends KILLED, no process it started lives on, one sentence says how to continue, the exit
status is 143; the continued sweep finishes every trial from its checkpoint with no MLflow run
duplicated. A second sweep into the outputs of a running one is refused before it touches them."""

from __future__ import annotations

import csv
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import psutil
import pytest
import yaml

from pipeline.config import CODE_ROOT
from pipeline.tune.sweep_lock import sweep_lock
from tests.tune.sweep_params import sweep_params
from tests.tune.test_resume import wait_for

OBJECTIVES = ("l1", "l2")


def survivors(processes: list[psutil.Process], grace: float) -> list[psutil.Process]:
    """The ``processes`` still alive after up to ``grace`` seconds (zombies count as ended)."""
    _, alive = psutil.wait_procs(processes, timeout=grace)
    return [p for p in alive if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]


@pytest.mark.slow
def test_sigterm_to_the_group_stops_the_sweep_resumably(tiny_data, tmp_path):
    params = sweep_params(tiny_data, tmp_path, {"objectives": {name: {"loss": {"terms": {name: 1.0}}}
                                                               for name in OBJECTIVES}, "reports": 4},
                          iterations=600)
    params_file = tmp_path / "params.yaml"
    params_file.write_text(yaml.safe_dump(params.model_dump(mode="json")))
    command = [sys.executable, "-m", "pipeline", "-q", "sweep", "--params", str(params_file)]
    folder = Path(params.sweep.storage_path) / params.sweep.name
    environment = {**os.environ, "PYTHONPATH": str(CODE_ROOT)}

    log = (tmp_path / "sweep.err").open("w+")
    sweep = subprocess.Popen(command, cwd=CODE_ROOT, env=environment, start_new_session=True,
                             stdout=subprocess.DEVNULL, stderr=log, text=True)
    started: list[psutil.Process] = []
    try:
        # each trial's second checkpoint: a trial writes a checkpoint before the driver takes its report, and
        # the second only after the driver took the first, so the sweep's state already holds that one
        wait_for(lambda: all(any(folder.glob(f"*-{name}-seed0/checkpoint_000001")) for name in OBJECTIVES), 240,
                 "the second checkpoint of each trial")
        started = psutil.Process(sweep.pid).children(recursive=True)
        os.killpg(sweep.pid, signal.SIGTERM)
        sweep.wait(timeout=120)
    finally:
        if sweep.poll() is None:
            os.killpg(sweep.pid, signal.SIGKILL)
        for process in survivors(started, 0):
            process.kill()
    left = survivors(started, 15)
    assert not left, [p.cmdline() for p in left]

    log.seek(0)
    stderr = log.read()
    assert sweep.returncode == 128 + signal.SIGTERM, stderr[-3000:]
    sentence = stderr.strip().splitlines()[-1]
    match = re.fullmatch(r"interrupted with (\d) of 2 trials of sweep 'test' finished \(SIGTERM\); "
                         r"continue with `(.+ --resume)`", sentence)
    assert match and int(match[1]) < 2, stderr[-3000:]  # at least one trial was stopped mid-run
    client = mlflow.MlflowClient(params.tracking.uri)
    experiment = client.get_experiment_by_name(params.tracking.experiment).experiment_id
    parent_id = json.loads((folder / "srloss_sweep.json").read_text())["parent_run_id"]
    statuses = {run.info.run_id: run.info.status for run in client.search_runs([experiment])}
    assert statuses[parent_id] == "KILLED" and "RUNNING" not in statuses.values(), statuses

    resumed = subprocess.run([sys.executable, *shlex.split(match[2])[1:]], cwd=CODE_ROOT, env=environment, capture_output=True,
                             text=True, timeout=400)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    rows = list(csv.DictReader((Path(params.results_dir) / "sweep" / "trials.csv").open()))
    assert sorted(row["objective"] for row in rows) == list(OBJECTIVES) and {row["status"] for row in rows} == {
        "COMPLETED"}
    runs = client.search_runs([experiment])
    assert [run.info.run_id for run in runs if "mlflow.parentRunId" not in run.data.tags] == [parent_id]
    children = [run for run in runs if run.data.tags.get("mlflow.parentRunId") == parent_id]
    assert sorted(run.data.tags["sweep.trial_id"] for run in children) == sorted(row["trial_id"] for row in rows)
    for run in children:
        assert run.info.status == "FINISHED"
        if statuses[run.info.run_id] == "KILLED":  # interrupted: went on from its checkpoint, not from 0
            assert int(run.data.tags["resumed_from_iteration"]) > 0
        steps = [m.step for m in sorted(client.get_metric_history(run.info.run_id, "val/psnr"),
                                        key=lambda m: m.timestamp)]
        assert steps == sorted(steps) and steps[-1] == 600, steps


class Unwind(Exception):
    pass


def test_the_sweep_lock_survives_a_forked_child_that_unwinds(tmp_path):
    """Found the hard way: a library forking the sweep's driver without exec, its child exiting through
    the ``with`` block, must not release the lock (an explicit LOCK_UN there would, for both)."""
    def probe() -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-c", "import sys; from pipeline.tune.sweep_lock import sweep_lock\n"
                               "with sweep_lock(sys.argv[1]): pass", str(tmp_path)],
                              env={**os.environ, "PYTHONPATH": str(CODE_ROOT)}, capture_output=True, text=True,
                              timeout=60)

    try:
        with sweep_lock(tmp_path):
            child = os.fork()
            if child == 0:
                raise Unwind  # the child leaves through sweep_lock's exit
            os.waitpid(child, 0)
            held = probe()
    except Unwind:
        os._exit(0)
    assert held.returncode == 1 and f"another sweep (pid {os.getpid()}) is writing" in held.stderr, held.stderr
    assert probe().returncode == 0  # released when the sweep's own block ends


def test_a_second_sweep_into_the_outputs_of_a_running_one_is_refused(tiny_data, tmp_path):
    """The running sweep is this process holding the lock (as ``run_sweep`` does for its whole length):
    a real sweep command then ends at once with one sentence, its folder and log untouched."""
    params = sweep_params(tiny_data, tmp_path, {"objectives": {"l1": {}}})
    params_file = tmp_path / "params.yaml"
    params_file.write_text(yaml.safe_dump(params.model_dump(mode="json")))
    earlier = Path(params.sweep.storage_path) / params.sweep.name / "trial" / "checkpoint_000000"
    earlier.mkdir(parents=True)
    log = Path(params.results_dir) / "sweep" / "sweep.log"
    log.parent.mkdir(parents=True)
    log.write_text("the running sweep's log\n")
    with sweep_lock(Path(params.results_dir)):
        second = subprocess.run([sys.executable, "-m", "pipeline", "-q", "sweep", "--params", str(params_file)],
                                cwd=CODE_ROOT, env={**os.environ, "PYTHONPATH": str(CODE_ROOT)},
                                capture_output=True, text=True, timeout=300)
    assert second.returncode == 2, second.stderr
    assert second.stderr == (f"error: another sweep (pid {os.getpid()}) is writing '{params.results_dir}'; wait for "
                             f"it to end, stop it with `kill -TERM {os.getpid()}` (it saves its trials for --resume), "
                             "or set results_dir and models_dir to other folders\n")
    assert earlier.is_dir() and log.read_text() == "the running sweep's log\n"
