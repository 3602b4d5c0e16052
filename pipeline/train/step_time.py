"""The measured time of a training step: the median wall time of an iteration's work, recorded in
every checkpoint's ``meta.step_ms`` (milliseconds; ``RunState.state`` records it).

A lap runs from the end of one iteration (``restart``, after its logs, validation and checkpoints,
which are in no lap) to the end of the next one's update (``lap``): loading the batch, the step
(``train_step``), the divergence check of the previous loss (which waits for the device, so on a GPU
a lap is the device's step time once the queue is full) and the EMA update. The first iteration
after the start (or a resume: warm-up, ``torch.compile``) opens the first lap.
The median ignores the rare slow laps (logging, a busy machine). Only the clock is read, so the
trained weights are the same with or without it.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

STEP_MS = "step_ms"


class StepTimes:
    """Laps between iteration ends (see the module docstring); ``clock`` returns seconds."""

    def __init__(self, clock: Callable[[], float] = time.perf_counter) -> None:
        self.clock = clock
        self.laps: list[float] = []
        self.mark: float | None = None

    def lap(self) -> None:
        """At the end of an iteration's update: time the lap since the last mark (none before the first)."""
        now = self.clock()
        if self.mark is not None:
            self.laps.append(now - self.mark)
        self.mark = now

    def restart(self) -> None:
        """At the end of an iteration (its logs, validation and checkpoints done): the next lap starts now."""
        self.mark = self.clock()

    def median_ms(self) -> float | None:
        """The median lap in milliseconds, None before the first lap."""
        return 1000 * statistics.median(self.laps) if self.laps else None

    def record_in(self, meta: dict[str, Any]) -> None:
        """``meta["step_ms"]`` = the median so far, once a lap was timed (a resumed run keeps the stored
        value until then)."""
        median = self.median_ms()
        if median is not None:
            meta[STEP_MS] = median
