"""The sweep's console: one compact line per trial event instead of Ray Tune's tables.

Each line is the sweep's state and what just happened, e.g.
``sweep 5/14 done, 2 running, 0 failed | best val/psnr 27.93 (grad2 seed0) | 2m10s, about 3m40s left | l1 seed1
finished: val/psnr 27.81``. The time left is the wall time so far per ended trial times the trials
not yet ended. Lines go to ``stream`` (stderr) and, through the ``pipeline.tune.progress`` logger, to
the sweep's log file (``pipeline.tune.log_file``).
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any, Callable, TextIO

from ray import tune

from pipeline.tune.log_file import FILE_ONLY
from pipeline.tune.space import trial_choice
from pipeline.tune.trial import run_name

log = logging.getLogger(__name__)


def duration(seconds: float) -> str:
    """``42s``, ``3m05s``, ``1h02m``."""
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


class SweepProgress(tune.Callback):
    """Counts trials (``total`` expected), keeps the best ``metric`` reported so far, and logs a line
    when a trial starts, finishes or fails (printed too when ``show``)."""

    def __init__(self, total: int, metric: str, mode: str, base_seed: int = 0, show: bool = True,
                 stream: TextIO | None = None, clock: Callable[[], float] = time.monotonic,
                 costs: dict[str, float] | None = None, planned: dict[str, int] | None = None):
        self.total = total
        self.costs = costs or {}
        self.cost_total = (sum(self.costs[name] * count for name, count in planned.items())
                           if costs and planned else float(total))
        self.cost_ended = 0.0
        self.base_seed = base_seed
        self.show = show
        self.metric = metric
        self.sign = 1.0 if mode == "max" else -1.0
        self.stream = stream
        self.clock = clock
        self.started = clock()
        self.running: set[str] = set()
        self.finished = 0
        self.failed = 0
        self.best: tuple[float, str] | None = None

    def label(self, trial: Any) -> str:
        """The trial's MLflow run name (``grad2 grad2=0.3 seed1``)."""
        choice = trial_choice(trial.config)
        return run_name(choice, self.base_seed + choice.seed_index)

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.running.add(trial.trial_id)
        self.emit(f"{self.label(trial)} started")

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict[str, Any], **info: Any) -> None:
        self.record(self.label(trial), result.get(self.metric))

    def cost(self, trial: Any) -> float:
        """The trial's objective's cost (1 without costs)."""
        return self.costs.get(trial_choice(trial.config).objective, 1.0) if self.costs else 1.0

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.running.discard(trial.trial_id)
        self.finished += 1
        self.cost_ended += self.cost(trial)
        value = (trial.last_result or {}).get(self.metric)
        self.emit(f"{self.label(trial)} finished" + (f": {self.metric} {value:.3f}" if value is not None else ""))

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.running.discard(trial.trial_id)
        self.failed += 1
        self.cost_ended += self.cost(trial)
        self.emit(f"{self.label(trial)} FAILED (the error is in results/sweep/trials.csv and the log)")

    def record(self, label: str, value: float | None) -> None:
        """Keep ``value`` of trial ``label`` when it beats the best so far."""
        if value is not None and (self.best is None or self.sign * value > self.sign * self.best[0]):
            self.best = (float(value), label)

    def status(self) -> str:
        """The sweep's state in one line (without the event)."""
        ended = self.finished + self.failed
        parts = [f"sweep {ended}/{self.total} done, {len(self.running)} running, {self.failed} failed"]
        if self.best is not None:
            parts.append(f"best {self.metric} {self.best[0]:.3f} ({self.best[1]})")
        elapsed = self.clock() - self.started
        timing = duration(elapsed)
        if ended and ended < self.total and self.cost_ended > 0:
            left = elapsed / self.cost_ended * max(0.0, self.cost_total - self.cost_ended)
            timing += f", about {duration(left)} left"
        parts.append(timing)
        return " | ".join(parts)

    def emit(self, event: str) -> None:
        line = f"{self.status()} | {event}"
        log.log(FILE_ONLY, "%s", line)
        if self.show:
            print(line, file=self.stream or sys.stderr, flush=True)
