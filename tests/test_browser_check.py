"""The browser check: a tiny tracked study opened in `mlflow ui` with headless Chromium (skipped
where Playwright or Chromium is missing); the server is stopped afterwards."""

from __future__ import annotations

import importlib.util
import json
import socket
import sys
from pathlib import Path

import mlflow
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))

import browser_check  # noqa: E402
import tiny_study  # noqa: E402

pytestmark = [
    pytest.mark.timeout(1500),  # the study alone took over 600 s with the machine's load at 25
    pytest.mark.slow,  # a sweep of 6 tiny trials, evaluate, and a browser: minutes on 2 busy cores
    pytest.mark.skipif(importlib.util.find_spec("playwright") is None, reason="Playwright is not installed"),
    pytest.mark.skipif(not Path(browser_check.CHROMIUM).is_file(), reason="Chromium is not installed"),
]


def test_the_runs_table_names_objectives_shows_a_benchmark_column_and_images_load(tmp_path, monkeypatch):
    study = tmp_path / "study"
    tiny_study.build(study)
    ports = []
    real_free_port = browser_check.free_port
    monkeypatch.setattr(browser_check, "free_port", lambda: ports.append(real_free_port()) or ports[-1])
    shots = tmp_path / "screenshots"
    assert browser_check.main(["--store", str(study / "mlflow.db"), "--metric", "Tiny/x2/psnr",
                               "--screenshots", str(shots)]) == 0
    parent = [run for run in mlflow.MlflowClient(f"sqlite:///{study / 'mlflow.db'}").search_runs(
        [mlflow.MlflowClient(f"sqlite:///{study / 'mlflow.db'}").get_experiment_by_name("srloss").experiment_id])
        if "mlflow.parentRunId" not in run.data.tags]
    means = json.loads((study / "results" / "metrics.json").read_text())
    assert "Tiny/x2/fine_grained.anchor/psnr" in means  # the second decode, by the name MLflow accepts
    assert {name: value for name, value in parent[0].data.metrics.items() if name in means} == means
    for name in ("default_view", "runs_table", "child_run", "child_run_images", "parent_summary"):
        with Image.open(shots / f"{name}.png") as image:
            assert image.size[0] >= 1600
    with pytest.raises(ConnectionRefusedError):  # the server is gone: nothing listens on its port
        socket.create_connection(("127.0.0.1", ports[0]), timeout=5).close()


def test_a_missing_store_is_one_sentence_and_status_2(tmp_path, capsys):
    assert browser_check.main(["--store", str(tmp_path / "none.db"), "--screenshots", str(tmp_path)]) == 2
    assert "does not exist; run a study first" in capsys.readouterr().err
