"""How far from converged: each objective's validation-PSNR gain over the last quarter of training.

For every seed's run, ``gain = PSNR(last validation) - PSNR(last validation at or before 3/4 of the
last step)``; an objective's gain is the mean over its seeds. A gain above ``STILL_RISING_DB`` (the
size of the smallest differences between objectives the leaderboard reports) flags the objective as
*still rising*: more iterations would change its scores, so its rank holds for this budget only.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from pipeline.report.curves import CurvePoint

VALIDATION_PSNR = "val/psnr"
STILL_RISING_DB = 0.05
LAST_PART = 0.25


@dataclass(frozen=True)
class Convergence:
    """The mean ``gain`` (dB) from step ``start`` to ``end`` over ``seeds`` runs."""

    gain: float
    start: int
    end: int
    seeds: int

    @property
    def rising(self) -> bool:
        return self.gain > STILL_RISING_DB

    def text(self) -> str:
        """``+0.21 dB (450→600), still rising``."""
        return f"{self.gain:+.2f} dB ({self.start}→{self.end})" + (", still rising" if self.rising else "")


def convergence(points: list[CurvePoint]) -> dict[str, Convergence]:
    """Objective -> its last-quarter gain, for the objectives with two validations in some run."""
    series: dict[str, dict[int | None, list[tuple[int, float]]]] = defaultdict(lambda: defaultdict(list))
    for point in points:
        if point.metric == VALIDATION_PSNR:
            series[point.objective][point.seed].append((point.step, point.value))
    found = {}
    for objective, runs in sorted(series.items()):
        gains = [gain for gain in map(_last_part_gain, runs.values()) if gain is not None]
        if gains:
            found[objective] = Convergence(sum(g for g, _, _ in gains) / len(gains), min(s for _, s, _ in gains),
                                           max(e for _, _, e in gains), len(gains))
    return found


def _last_part_gain(run: list[tuple[int, float]]) -> tuple[float, int, int] | None:
    ordered = sorted(run)
    end, last = ordered[-1]
    before = [(step, value) for step, value in ordered[:-1] if step <= (1 - LAST_PART) * end]
    if not before:
        return None
    start, value = before[-1]
    return last - value, start, end
