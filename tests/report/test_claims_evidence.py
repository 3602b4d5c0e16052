"""LPIPS claims carry labelled weight-free perceptual evidence; CS/FCS carry the spectral ratio."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.report.claims import render_claims, spectral_distance
from pipeline.report.per_image import PerImageScores
from pipeline.report.verdicts import BETTER, WORSE

IMAGES = 6


def _scores() -> PerImageScores:
    """``l1`` blurrier than HR (ratio 0.5), ``cs`` closer (0.8), ``fcs`` over-sharpened (4.0), two seeds."""
    scores = PerImageScores()
    shift = np.linspace(-0.01, 0.01, IMAGES)
    for method, ratio, haarpsi, mdsi in (("l1", 0.5, 0.80, 0.30), ("cs", 0.8, 0.85, 0.25), ("fcs", 4.0, 0.70, 0.40)):
        for seed in (0, 1):
            for image in range(IMAGES):
                scores.add("Set5", 4, method, seed, f"im{image}",
                           {"psnr": 30.0 + shift[image], "hf_ratio": ratio + shift[image],
                            "haarpsi": haarpsi + shift[image], "mdsi": mdsi + shift[image],
                            "ms_gmsd": mdsi / 3 + shift[image] / 10})
    return scores


def test_spectral_distance_rewards_the_ratio_closer_to_one_on_either_side():
    scores = _scores()
    assert spectral_distance(scores, "Set5", 4, "cs", "l1").verdict == BETTER
    assert spectral_distance(scores, "Set5", 4, "fcs", "l1").verdict == WORSE
    closer = spectral_distance(scores, "Set5", 4, "cs", "l1")
    shift = np.linspace(-0.01, 0.01, IMAGES)
    assert closer.mean == pytest.approx(np.mean(np.abs(np.log2(0.8 + shift)) - np.abs(np.log2(0.5 + shift))))


def test_lpips_claims_show_weight_free_evidence_beside_lpips_not_testable():
    markdown = render_claims(_scores(), PerImageScores(), [("Set5", 4)], {"lpips": "LPIPS unavailable: offline"},
                             "provenance")
    cs = markdown.split("## 4. ")[1].split("## 5. ")[0]
    assert "- Set5 x4, lpips: not testable here: LPIPS unavailable (reason above)" in cs
    assert "- Set5 x4, haarpsi (weight-free perceptual evidence, not LPIPS): +0.0500" in cs
    assert "→ **better**" in cs.split("mdsi (weight-free perceptual evidence, not LPIPS): -0.0500")[1].split("\n")[0]
    assert "ms_gmsd (weight-free perceptual evidence, not LPIPS)" in cs
    assert "mean ratio cs 0.800, l1 0.500" in cs
    summary_row = next(line for line in markdown.splitlines() if line.startswith("| 4 |"))
    assert "| not testable here (on Set5 x4) |" in summary_row  # weight-free evidence never stands in for LPIPS
    tlw = markdown.split("## 1. ")[1].split("## 2. ")[0]
    assert "haarpsi (weight-free perceptual evidence, not LPIPS): not testable here" in tlw
    fine_grained = markdown.split("## 3. ")[1].split("## 4. ")[0]
    assert "weight-free" not in fine_grained and "high-frequency energy SR/HR" in fine_grained
