"""Training records its median step time in every checkpoint (``meta.step_ms``) without changing a weight."""

from __future__ import annotations

from pipeline.train.checkpoint import load_checkpoint
from pipeline.train.loop import fit
from pipeline.train.step_time import STEP_MS, StepTimes
from tests.train.test_fit import assert_same_tensors


class Clock:
    """A clock that returns the given times in turn."""

    def __init__(self, *times: float) -> None:
        self.times = list(times)

    def __call__(self) -> float:
        return self.times.pop(0)


def test_laps_run_between_iteration_ends_and_a_restart_leaves_out_validation():
    steps = StepTimes(Clock(10.0, 10.2, 10.5, 20.0, 20.1, 20.4))
    assert steps.median_ms() is None
    steps.lap()  # the first iteration's end only opens a lap (warm-up is in no lap)
    steps.lap()  # 0.2 s
    steps.lap()  # 0.3 s
    steps.restart()  # after a validation that ended at 20.0: its 9.5 s are in no lap
    steps.lap()  # 0.1 s
    steps.lap()  # 0.3 s
    assert [round(lap, 6) for lap in steps.laps] == [0.2, 0.3, 0.1, 0.3]
    assert round(steps.median_ms(), 6) == 250.0


def test_a_run_without_laps_keeps_the_stored_step_time():
    meta = {STEP_MS: 12.5}
    steps = StepTimes(Clock(1.0, 1.5, 2.25))
    steps.lap()
    steps.record_in(meta)
    assert meta == {STEP_MS: 12.5}  # a resume that has timed nothing yet keeps its checkpoint's value
    steps.lap()
    steps.lap()
    steps.record_in(meta)
    assert round(meta[STEP_MS], 6) == 625.0  # median of 500 and 750 ms


def test_every_checkpoint_holds_the_median_step_time_and_timing_changes_no_weight(tiny_data, tmp_path, monkeypatch):
    timed = fit(tiny_data, tmp_path / "timed")
    best, last = load_checkpoint(timed.best_checkpoint), load_checkpoint(timed.last_checkpoint)
    assert best["meta"][STEP_MS] > 0 and last["meta"][STEP_MS] > 0
    for method in ("lap", "restart", "record_in"):  # a run that never reads the clock nor records anything
        monkeypatch.setattr(StepTimes, method, lambda self, *args: None)
    untimed = fit(tiny_data, tmp_path / "untimed")
    plain = load_checkpoint(untimed.last_checkpoint)
    assert STEP_MS not in plain["meta"]
    for part in ("model", "objective", "optimizer", "rng"):
        assert_same_tensors(last[part], plain[part])
