"""``evaluate`` stopped by a signal mid-way keeps the previous evaluation's reports byte for byte,
says how to continue in one sentence and exits with 128 + the signal's number."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
import yaml

from pipeline import cli
from pipeline.interrupt import STOP_SIGNALS
from pipeline.report import evaluate as evaluate_module
from pipeline.report.evaluate import evaluate_all

from .conftest import study_params


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(path.relative_to(folder)): path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file()}


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGUSR1])
def test_an_interrupted_evaluate_keeps_the_previous_reports(study, tmp_path, monkeypatch, capsys, signum):
    params = study_params(study, results_dir=str(tmp_path / "results"),
                          evaluate={"scales": [2], "benchmarks": ["Tiny"], "device": "cpu", "tile": 24,
                                    "tile_overlap": 4, "crop_size": 24})
    evaluate_all(params)
    before = snapshot(tmp_path / "results")
    assert "metrics.json" in before
    params_file = tmp_path / "params.yaml"
    params_file.write_text(yaml.safe_dump(params.model_dump(mode="json")))

    scored = evaluate_module._evaluate_objective

    def signalled_while_scoring(*args, **kwargs):  # the signal comes while the first model is scored
        os.kill(os.getpid(), signum)
        return scored(*args, **kwargs)

    monkeypatch.setattr(evaluate_module, "_evaluate_objective", signalled_while_scoring)
    handlers = {s: signal.getsignal(s) for s in STOP_SIGNALS}
    try:
        status = cli.main(["-q", "evaluate", "--params", str(params_file)])
    finally:
        for s, handler in handlers.items():
            signal.signal(s, handler)
    assert status == 128 + signum
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"interrupted while running evaluate ({signal.Signals(signum).name}); run `python -m pipeline -q evaluate "
        f"--params {params_file}` again (the earlier outputs are kept)")
    assert snapshot(tmp_path / "results") == before
