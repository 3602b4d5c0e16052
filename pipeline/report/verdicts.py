"""Paired comparisons with a confidence interval: is objective A better than baseline B?

A and B are scored on the same images with the same training seeds, so the comparison is made on
their per-image, per-seed differences ``d[i, s] = A[i, s] - B[i, s]`` (a baseline without seeds,
bicubic, is broadcast over A's seeds). The estimate is the mean of ``d``; its 95% interval is a
two-way percentile bootstrap: each of ``RESAMPLES`` replicates draws the images and the seeds
independently with replacement and takes the mean of ``d`` over the drawn rows and columns
(Efron & Tibshirani 1993, ch. 13; resampling both factors covers image-to-image and
seed-to-seed variation). The bootstrap generator is seeded, so a report is reproducible.

Verdict, for a metric where higher is better: *better* when the whole interval is above 0, *worse*
when it is below 0, *not established* otherwise (signs flip for lower-is-better metrics). With fewer
than ``MIN_SEEDS`` training seeds the seed-to-seed variation is not measured, the interval covers the
images only and would overstate the certainty, so the verdict is *not evidence (1 seed)* whatever the
interval.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

RESAMPLES = 10_000
CONFIDENCE = 0.95
BOOTSTRAP_SEED = 0

MIN_SEEDS = 2

BETTER, WORSE, UNSETTLED = "better", "worse", "not established"


def too_few_seeds(seeds: int) -> str:
    """The verdict of a comparison on fewer than ``MIN_SEEDS`` seeds: ``not evidence (1 seed)``."""
    return f"not evidence ({seeds} seed{'s' * (seeds != 1)})"


@dataclass(frozen=True)
class PairedDelta:
    """``mean`` of A - B with its bootstrap interval ``[low, high]`` and the verdict for A."""

    mean: float
    low: float
    high: float
    images: int
    seeds: int
    verdict: str

    def text(self, digits: int) -> str:
        """``+0.12 [+0.03, +0.21]``."""
        return f"{self.mean:+.{digits}f} [{self.low:+.{digits}f}, {self.high:+.{digits}f}]"

    @property
    def is_evidence(self) -> bool:
        """Whether the verdict is one of *better*, *worse*, *not established* (not withheld)."""
        return self.verdict in (BETTER, WORSE, UNSETTLED)

    def withheld(self, reason: str) -> PairedDelta:
        """The same numbers without a verdict: ``not evidence (<reason>)``."""
        return self if not self.is_evidence else replace(self, verdict=f"not evidence ({reason})")


def paired_delta(candidate: np.ndarray, baseline: np.ndarray, higher_is_better: bool = True, *,
                 resamples: int = RESAMPLES, seed: int = BOOTSTRAP_SEED) -> PairedDelta:
    """Compare ``candidate`` (``images x seeds``) with ``baseline`` (``images x seeds`` or ``images x 1``)."""
    differences = np.asarray(candidate, dtype=np.float64) - np.asarray(baseline, dtype=np.float64)
    if differences.ndim != 2 or differences.size == 0 or not np.isfinite(differences).all():
        raise ValueError(f"paired_delta needs finite images x seeds arrays, got shape {differences.shape}")
    replicates = bootstrap_means(differences, resamples, seed)
    tail = (1 - CONFIDENCE) / 2
    low, high = (float(v) for v in np.quantile(replicates, [tail, 1 - tail]))
    seeds = differences.shape[1]
    return PairedDelta(float(differences.mean()), low, high, differences.shape[0], seeds,
                       verdict(low, high, higher_is_better) if seeds >= MIN_SEEDS else too_few_seeds(seeds))


def bootstrap_means(differences: np.ndarray, resamples: int, seed: int) -> np.ndarray:
    """``resamples`` means of ``differences`` over images and seeds drawn with replacement (two-way)."""
    images, seeds = differences.shape
    rng = np.random.default_rng(seed)
    rows = rng.integers(0, images, size=(resamples, images))
    columns = rng.integers(0, seeds, size=(resamples, seeds))
    return differences[rows[:, :, None], columns[:, None, :]].mean(axis=(1, 2))


def verdict(low: float, high: float, higher_is_better: bool) -> str:
    """*better*, *worse* or *not established* from an interval of A - B."""
    if low > 0:
        return BETTER if higher_is_better else WORSE
    if high < 0:
        return WORSE if higher_is_better else BETTER
    return UNSETTLED

