"""The comparison crop is the most textured window of the HR image, found deterministically."""

from __future__ import annotations

import numpy as np
from PIL import Image

from pipeline.report.comparison import Comparison, highest_variance_crop


def _brute_force(image: np.ndarray, side: int) -> tuple[int, int]:
    grey = image.astype(np.float64).mean(axis=2)
    variances = np.array([[grey[y:y + side, x:x + side].var() for x in range(grey.shape[1] - side + 1)]
                          for y in range(grey.shape[0] - side + 1)])
    top, left = np.unravel_index(np.argmax(variances), variances.shape)
    return int(top), int(left)


def test_the_crop_finds_the_one_textured_window():
    rng = np.random.default_rng(0)
    image = np.full((60, 80, 3), 128, dtype=np.uint8)
    image[23:39, 41:57] = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
    assert highest_variance_crop(image, 16) == (23, 41, 16)


def test_the_crop_matches_a_brute_force_search():
    image = np.random.default_rng(1).integers(0, 256, (23, 31, 3), dtype=np.uint8)
    top, left, side = highest_variance_crop(image, 9)
    assert side == 9 and (top, left) == _brute_force(image, 9)


def test_a_crop_larger_than_the_image_is_the_whole_short_side():
    image = np.random.default_rng(2).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    top, left, side = highest_variance_crop(image, 96)
    assert side == 20 and top == 0 and (top, left) == _brute_force(image, 20)


def test_the_comparison_is_a_png_with_every_panel(tmp_path):
    rng = np.random.default_rng(3)
    hr = rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)
    comparison = Comparison("Set5", 2, "baby", hr)
    comparison.outputs["bicubic"] = (hr // 2, 30.0)
    comparison.outputs["l1"] = (hr, 40.0)
    comparison.seeds["l1"] = 3
    assert [(panel.label, panel.caption) for panel in comparison.panels(np.s_[:8, :8])] == [
        ("HR", "ground truth"), ("bicubic", "PSNR 30.00 dB"), ("l1, seed 3", "PSNR 40.00 dB")]
    path = comparison.save(24, tmp_path / "comparison.png")
    with Image.open(path) as png:
        assert png.format == "PNG" and png.width > 2 * png.height > 400
