"""Texture/flat PSNR and the dark-artefact proxy: deterministic masks and hand-checkable values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from pipeline.metrics.regions import DARK_GAP, TEXTURE_STD, region_scores, texture_mask


def _half_textured(seed: int = 0) -> np.ndarray:
    """Left half flat grey 128, right half noise with std 40: the mask splits the image at the middle."""
    rng = np.random.default_rng(seed)
    image = np.full((64, 64, 3), 128, dtype=np.uint8)
    image[:, 32:] = np.clip(128 + 40 * rng.standard_normal((64, 32, 1)), 0, 255).astype(np.uint8)
    return image


def test_the_texture_mask_is_deterministic_and_follows_local_variation():
    plane = _half_textured()[..., 0].astype(np.float64)
    mask = texture_mask(plane)
    assert np.array_equal(mask, texture_mask(plane.copy()))
    assert not mask[:, :28].any() and mask[:, 36:].mean() > 0.95
    constant_step = np.zeros((32, 32)); constant_step[:, 16:] = TEXTURE_STD / 2
    assert not texture_mask(constant_step).any()


def test_region_psnr_is_the_psnr_of_each_regions_pixels():
    hr = _half_textured()
    sr = hr.astype(np.int16)
    sr[:, :32] += 2   # flat region off by 2 levels
    sr[:, 32:] += 8   # textured region off by 8 levels (clipping aside)
    sr = np.clip(sr, 0, 255).astype(np.uint8)
    scores = region_scores(sr, hr, crop_border=0, y_channel=False)
    mask = texture_mask(hr.astype(np.float64).mean(axis=2))
    errors = ((sr.astype(np.float64) - hr) ** 2).mean(axis=2)
    assert scores["psnr_flat"] == pytest.approx(10 * math.log10(255**2 / errors[~mask].mean()), abs=1e-9)
    assert scores["psnr_texture"] == pytest.approx(10 * math.log10(255**2 / errors[mask].mean()), abs=1e-9)
    assert scores["psnr_flat"] == pytest.approx(10 * math.log10(255**2 / 4), abs=0.2)
    assert scores["texture_fraction"] == pytest.approx(mask.mean())


def test_dark_artefacts_count_pixels_much_darker_than_hr_per_megapixel():
    hr = np.full((100, 100, 3), 200, dtype=np.uint8)
    sr = hr.copy()
    sr[0, :10] = 0                          # 10 black pixels
    sr[1, :5] = 200 - int(DARK_GAP) + 1     # 5 pixels just short of the gap: not counted
    sr[2, :5] = 255                         # brighter: not counted
    scores = region_scores(sr, hr, crop_border=0, y_channel=True)
    assert scores["dark_per_mp"] == pytest.approx(1e6 * 10 / 10_000)
    assert scores["texture_fraction"] == 0.0 and math.isnan(scores["psnr_texture"])  # a flat HR has no texture
