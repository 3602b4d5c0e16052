"""Paired bootstrap intervals: equal to a plain reference computation, to SciPy's on one seed, and exact
in the degenerate cases."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from pipeline.report.verdicts import paired_delta, verdict

CANDIDATE = np.array([[31.2, 31.4], [28.9, 29.3], [33.0, 32.7], [30.1, 30.6], [27.5, 27.4]])
BASELINE = np.array([[31.0, 31.1], [29.0, 29.0], [32.5, 32.6], [30.0, 30.2], [27.6, 27.2]])


def reference_interval(differences: np.ndarray, resamples: int, seed: int) -> tuple[float, float]:
    """The two-way percentile bootstrap written out with loops over the same random draws."""
    rng = np.random.default_rng(seed)
    images, seeds = differences.shape
    rows = rng.integers(0, images, size=(resamples, images))
    columns = rng.integers(0, seeds, size=(resamples, seeds))
    means = []
    for b in range(resamples):
        total = 0.0
        for i in rows[b]:
            for s in columns[b]:
                total += differences[i, s]
        means.append(total / (images * seeds))
    ordered = np.sort(means)
    return tuple(np.quantile(ordered, [0.025, 0.975]))


def test_the_interval_equals_the_reference_computation_on_fixed_numbers():
    delta = paired_delta(CANDIDATE, BASELINE, resamples=2000, seed=7)
    low, high = reference_interval(CANDIDATE - BASELINE, 2000, 7)
    assert delta.mean == pytest.approx((CANDIDATE - BASELINE).mean(), abs=1e-12)
    assert (delta.low, delta.high) == pytest.approx((low, high), abs=1e-12)
    assert (delta.images, delta.seeds) == (5, 2) and delta.low < delta.mean < delta.high
    assert delta.text(2) == f"{delta.mean:+.2f} [{delta.low:+.2f}, {delta.high:+.2f}]"


def test_with_one_seed_it_agrees_with_scipys_percentile_bootstrap():
    differences = (CANDIDATE - BASELINE)[:, :1]
    ours = paired_delta(differences, np.zeros_like(differences), resamples=20000)
    theirs = stats.bootstrap((differences[:, 0],), np.mean, n_resamples=20000, method="percentile",
                             random_state=np.random.default_rng(1)).confidence_interval
    assert (ours.low, ours.high) == pytest.approx((theirs.low, theirs.high), abs=0.02)


def test_a_baseline_without_seeds_is_broadcast_over_the_candidates_seeds():
    bicubic = BASELINE[:, :1]
    delta = paired_delta(CANDIDATE, bicubic)
    assert delta.mean == pytest.approx((CANDIDATE - bicubic).mean(), abs=1e-12) and delta.seeds == 2


def test_constant_differences_give_a_point_interval_and_a_verdict():
    better = paired_delta(BASELINE + 0.3, BASELINE)
    assert (better.low, better.mean, better.high) == pytest.approx((0.3, 0.3, 0.3), abs=1e-12)
    assert better.verdict == "better"
    assert paired_delta(BASELINE - 0.3, BASELINE).verdict == "worse"
    assert paired_delta(BASELINE - 0.3, BASELINE, higher_is_better=False).verdict == "better"
    assert verdict(-0.1, 0.2, True) == verdict(-0.1, 0.2, False) == "not established"


def test_non_finite_values_are_refused():
    with pytest.raises(ValueError, match="finite"):
        paired_delta(np.array([[np.nan]]), np.array([[1.0]]))


def test_a_claim_holds_only_where_its_required_parts_are_better():
    from pipeline.report.claims import CLAIMS, claim_status
    from pipeline.report.verdicts import PairedDelta

    tlw = CLAIMS[0]
    assert tlw.required == ("psnr", "lpips")
    better = PairedDelta(0.2, 0.1, 0.3, 5, 2, "better")
    worse = PairedDelta(-0.2, -0.3, -0.1, 5, 2, "worse")
    unsettled = PairedDelta(0.0, -0.1, 0.1, 5, 2, "not established")
    key = ("Set5", 2)
    assert claim_status(tlw, {(*key, "psnr"): better, (*key, "lpips"): better}) == "supported"
    assert claim_status(tlw, {(*key, "psnr"): better, (*key, "lpips"): worse}) == "contradicted"
    assert claim_status(tlw, {(*key, "psnr"): better, (*key, "lpips"): unsettled}) == "not established"
    assert claim_status(tlw, {(*key, "psnr"): better, (*key, "lpips"): "LPIPS unavailable"}) == \
        "supported where testable (lpips not testable here)"
    assert claim_status(tlw, {(*key, "psnr"): "no tlw", (*key, "lpips"): "LPIPS unavailable"}) == "not testable here"
    assert claim_status(tlw, {(*key, "psnr"): better, (*key, "lpips"): better, ("Set14", 2, "psnr"): worse}) == \
        "contradicted"
