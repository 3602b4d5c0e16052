"""``python -m pipeline train`` ended by a stop signal: ``last.pt`` at the interrupted iteration,
the MLflow run KILLED, one sentence with the command that continues, exit status 128 + signal, and
the continued run ends bitwise equal to an uninterrupted one in the same MLflow run."""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import pytest
import yaml

from pipeline.config import CODE_ROOT
from pipeline.interrupt import STOP_SIGNALS, Interrupted, StopSignals
from pipeline.train.callbacks import Callback
from pipeline.train.checkpoint import load_checkpoint
from pipeline.train.loop import fit
from tests.train.test_fit import assert_same_tensors

ITERATIONS = 120


def train_command(params_file: Path, run_dir: Path) -> list[str]:
    return [sys.executable, "-m", "pipeline", "-q", "train", "--params", str(params_file), "--run-dir", str(run_dir)]


def single_thread_env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(CODE_ROOT)}


class SignalAt(Callback):
    """Sends ``signum`` to this process at a training log of ``iteration``."""

    def __init__(self, iteration: int, signum: int) -> None:
        self.iteration, self.signum = iteration, signum

    def on_train_log(self, iteration, logs):
        if iteration == self.iteration:
            os.kill(os.getpid(), self.signum)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGUSR1, signal.SIGTERM])
def test_fit_stops_after_the_signalled_iteration_and_resumes_bitwise(tiny_data, tmp_path, signum):
    """A signal at iteration 9 (no checkpoint due: they are at 6 and 12) ends the run there."""
    whole = fit(tiny_data, tmp_path / "whole")
    signals = StopSignals(record=True)
    handlers = {s: signal.getsignal(s) for s in STOP_SIGNALS}
    try:
        signals.install()
        with pytest.raises(Interrupted) as stopped:
            fit(tiny_data, tmp_path / "split", [SignalAt(9, signum)], stop=signals)
    finally:
        for s, handler in handlers.items():
            signal.signal(s, handler)
    assert (stopped.value.signum, stopped.value.exit_status) == (signum, 128 + signum)
    assert str(stopped.value) == f"interrupted at iteration 9 ({signal.Signals(signum).name})"
    assert load_checkpoint(tmp_path / "split" / "checkpoints" / "last.pt")["iteration"] == 9
    resumed = fit(tiny_data, tmp_path / "split", resume=tmp_path / "split" / "checkpoints" / "last.pt")
    a, b = load_checkpoint(whole.last_checkpoint), load_checkpoint(resumed.last_checkpoint)
    for part in ("model", "objective", "optimizer", "rng"):
        assert_same_tensors(a[part], b[part])
    assert (resumed.best_metric, resumed.final_metrics) == (whole.best_metric, whole.final_metrics)


@pytest.mark.slow
def test_a_signalled_train_command_checkpoints_and_continues_to_the_uninterrupted_weights(tiny_data, tmp_path):
    signum = signal.SIGTERM
    tiny_data.train.iterations = ITERATIONS
    tiny_data.train.val_every = tiny_data.train.checkpoint_every = 20
    tiny_data.tracking = tiny_data.tracking.model_validate(
        {"enabled": True, "uri": f"sqlite:///{tmp_path / 'mlflow.db'}", "experiment": "train",
         "artifact_location": str(tmp_path / "mlartifacts"), "log_model": False, "log_images": 0})
    params_file = tmp_path / "params.yaml"
    params_file.write_text(yaml.safe_dump(tiny_data.model_dump(mode="json")))
    split = tmp_path / "split"

    trainer = subprocess.Popen(train_command(params_file, split), cwd=tmp_path, env=single_thread_env(),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not (split / "checkpoints" / "best.pt").is_file():  # the first validation: training is under way
        assert trainer.poll() is None and time.monotonic() < deadline, trainer.communicate()[1][-2000:]
        time.sleep(0.05)
    trainer.send_signal(signum)
    _, stderr = trainer.communicate(timeout=60)

    assert trainer.returncode == 128 + signum, stderr
    sentence = stderr.strip().splitlines()[-1]
    match = re.fullmatch(rf"interrupted at iteration (\d+) \({signal.Signals(signum).name}\); continue with `(.+)`",
                         sentence)
    assert match, sentence
    stopped_at = int(match[1])
    assert 20 <= stopped_at < ITERATIONS
    assert load_checkpoint(split / "checkpoints" / "last.pt")["iteration"] == stopped_at
    client = mlflow.MlflowClient(tiny_data.tracking.uri)
    [run] = client.search_runs([client.get_experiment_by_name("train").experiment_id])
    assert run.info.status == "KILLED"

    continued = subprocess.run([sys.executable, *shlex.split(match[2])[1:]], cwd=tmp_path, env=single_thread_env(), capture_output=True,
                               text=True, timeout=300)
    assert continued.returncode == 0, continued.stderr[-2000:]
    untracked = tiny_data.model_copy(deep=True)
    untracked.tracking.enabled = False
    a = load_checkpoint(fit(untracked, tmp_path / "whole").last_checkpoint)  # one thread, as the command had
    b = load_checkpoint(split / "checkpoints" / "last.pt")
    assert a["iteration"] == b["iteration"] == ITERATIONS
    for part in ("model", "objective", "optimizer", "rng"):
        assert_same_tensors(a[part] or {}, b[part] or {})
    assert a["best"] == b["best"]
    runs = client.search_runs([client.get_experiment_by_name("train").experiment_id])
    assert [(r.info.run_id, r.info.status) for r in runs] == [(run.info.run_id, "FINISHED")]  # continued, not doubled
