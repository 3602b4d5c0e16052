"""Stop signals at the command line: a DVC stage dies with ``dvc``, and the sweep's parent process
passes the stop signals on to the sweep it runs in a session of its own."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import psutil

from pipeline import cli
from pipeline.config import CODE_ROOT

STAGE = ("from pipeline.interrupt import end_with_parent; end_with_parent(); import time; "
         "print('ready', flush=True); time.sleep(120)")


def test_a_stage_ends_when_the_process_that_ran_it_dies():
    """``dvc`` killed alone: the stage it ran gets SIGTERM (``end_with_parent``) instead of running on."""
    environment = {**os.environ, "PYTHONPATH": str(CODE_ROOT)}
    dvc = subprocess.Popen(["bash", "-c", f'{sys.executable} -c "{STAGE}" & echo $!; wait'], env=environment,
                           stdout=subprocess.PIPE, text=True, start_new_session=True)
    try:
        stage = psutil.Process(int(dvc.stdout.readline()))
        assert dvc.stdout.readline().strip() == "ready"
        dvc.kill()
        dvc.wait(timeout=10)
        stage.wait(timeout=30)  # raises psutil.TimeoutExpired if it runs on (it would sleep 120 s)
        assert not stage.is_running()
    finally:
        if dvc.poll() is None:
            os.killpg(dvc.pid, signal.SIGKILL)


def test_the_cli_ends_with_dvc_only_when_run_by_it(monkeypatch):
    asked = []
    monkeypatch.setattr(cli, "end_with_parent", lambda: asked.append(True))
    monkeypatch.delenv("DVC_STAGE", raising=False)
    assert cli.main(["models"]) == 0 and asked == []
    monkeypatch.setenv("DVC_STAGE", "sweep")
    assert cli.main(["models"]) == 0 and asked == [True]
