"""The sweep's console line and its log file (no Ray cluster needed)."""

from __future__ import annotations

import io
import logging
from types import SimpleNamespace

from pipeline.tune.log_file import log_to_file
from pipeline.tune.progress import SweepProgress, duration


def trial(trial_id: str, objective: str, seed: int, values: dict | None = None, last: dict | None = None):
    config = {"variant": {"objective": objective, "grid": values or {}}, "seed": seed}
    return SimpleNamespace(trial_id=trial_id, config=config, last_result=last or {})


def test_each_event_prints_counts_the_best_so_far_and_the_time_left():
    now = [0.0]
    out = io.StringIO()
    progress = SweepProgress(4, "val/psnr", "max", base_seed=10, stream=out, clock=lambda: now[0])
    a, b = trial("a", "l1", 0), trial("b", "grad2", 1, {"loss.terms.grad2": 0.3})
    progress.on_trial_start(0, [], a)
    progress.on_trial_start(0, [], b)
    progress.on_trial_result(0, [], a, {"val/psnr": 27.5})
    progress.on_trial_result(0, [], b, {"val/psnr": 28.25})
    progress.on_trial_result(0, [], a, {"val/psnr": 28.0})
    now[0] = 60.0
    progress.on_trial_complete(0, [], a.__class__(**{**vars(a), "last_result": {"val/psnr": 28.0}}))
    now[0] = 90.0
    progress.on_trial_error(0, [], b)
    lines = out.getvalue().splitlines()
    assert lines[1] == "sweep 0/4 done, 2 running, 0 failed | 0s | grad2 grad2=0.3 seed11 started"
    assert lines[2] == ("sweep 1/4 done, 1 running, 0 failed | best val/psnr 28.250 (grad2 grad2=0.3 seed11) | "
                        "1m00s, about 3m00s left | l1 seed10 finished: val/psnr 28.000")
    assert lines[3].startswith("sweep 2/4 done, 0 running, 1 failed | best val/psnr 28.250")
    assert "1m30s, about 1m30s left | grad2 grad2=0.3 seed11 FAILED" in lines[3]


def test_a_minimising_metric_keeps_the_lowest_value():
    progress = SweepProgress(1, "val/lpips", "min", stream=io.StringIO())
    for value in (0.3, 0.2, 0.25):
        progress.record("x", value)
    assert progress.best == (0.2, "x")


def test_durations_read_like_a_clock():
    assert [duration(s) for s in (4.4, 65, 3725)] == ["4s", "1m05s", "1h02m"]


def test_the_log_file_gets_info_while_a_quiet_console_stays_quiet(tmp_path):
    console = io.StringIO()
    handler = logging.StreamHandler(console)
    root = logging.getLogger()
    saved = root.level
    root.addHandler(handler)
    root.setLevel(logging.WARNING)
    try:
        with log_to_file(tmp_path / "logs" / "sweep.log") as path:
            logging.getLogger("pipeline.tune.x").info("details")
            SweepProgress(1, "val/psnr", "max", stream=io.StringIO()).emit("a trial started")
            logging.getLogger("ray.tune").warning("a warning")  # Ray's and MLflow's loggers do not reach the root
            logging.getLogger("mlflow.store").warning("another")
            logging.getLogger("pipeline.tune.x").warning("mine")
        logging.getLogger("pipeline.tune.x").warning("after")
    finally:
        root.removeHandler(handler)
        root.setLevel(saved)
    text = path.read_text()
    assert "INFO pipeline.tune.x: details" in text and "WARNING ray.tune: a warning" in text and "after" not in text
    assert "WARNING mlflow.store: another" in text and "| a trial started" in text
    assert console.getvalue() == "mine\nafter\n"


def test_the_time_left_weighs_each_trial_by_its_objectives_cost():
    now = [0.0]
    out = io.StringIO()
    progress = SweepProgress(4, "val/psnr", "max", stream=out, clock=lambda: now[0], costs={"cs": 7.0, "l1": 1.0},
                             planned={"cs": 2, "l1": 2})
    first = trial("a", "cs", 0)
    progress.on_trial_start(0, [], first)
    now[0] = 70.0  # one CS trial: 7 of the 16 cost units in 70 s, so 9 units (90 s) are left
    progress.on_trial_complete(0, [], first)
    assert "1m10s, about 1m30s left | cs seed0 finished" in out.getvalue().splitlines()[-1]
    cheap = trial("b", "l1", 0)
    now[0] = 80.0  # 8 units in 80 s: 8 left
    progress.on_trial_error(0, [], cheap)
    assert "1m20s, about 1m20s left" in out.getvalue().splitlines()[-1]
