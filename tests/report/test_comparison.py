"""The comparison crops are where the objectives' outputs differ most, never overlapping, each with its own
crop PSNR and an error map."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from pipeline.metrics.reference import psnr
from pipeline.report.comparison import Comparison, pick_windows


def _comparison() -> Comparison:
    """Two 40x48 images; l1 and grad2 agree everywhere but in a 10x10 patch of image 1 (strongly) and of
    image 0 (weakly)."""
    rng = np.random.default_rng(0)
    hrs = [rng.integers(0, 256, (40, 48, 3), dtype=np.uint8) for _ in range(2)]
    comparison = Comparison("Set5", 2, ["a", "b"], hrs)
    comparison.outputs["bicubic"] = [hr // 2 for hr in hrs]
    comparison.outputs["l1"] = [hr.copy() for hr in hrs]
    grad2 = [hr.copy() for hr in hrs]
    grad2[1][20:30, 5:15] = 255 - grad2[1][20:30, 5:15]
    grad2[0][2:12, 30:40] = np.clip(grad2[0][2:12, 30:40].astype(int) + 40, 0, 255).astype(np.uint8)
    comparison.outputs["grad2"] = grad2
    comparison.seeds.update(l1=0, grad2=1)
    return comparison


def test_the_crops_are_where_the_objectives_differ_most_and_do_not_overlap():
    crops = _comparison().crops(10, count=3)
    assert [(c.index, c.top, c.left) for c in crops[:2]] == [(1, 20, 5), (0, 2, 30)]
    assert crops[0].score > crops[1].score > crops[2].score
    third = crops[2]
    assert not (third.index == 0 and abs(third.top - 2) < 10 and abs(third.left - 30) < 10)
    assert not (third.index == 1 and abs(third.top - 20) < 10 and abs(third.left - 5) < 10)


def test_greedy_windows_never_overlap_in_one_image_but_may_across_images():
    scores = np.zeros((5, 5))
    scores[2, 2], scores[2, 3], scores[0, 0] = 3.0, 2.0, 1.0
    crops = pick_windows([(0, 2, scores), (1, 2, scores)], 4)
    assert [(c.index, c.top, c.left) for c in crops] == [(0, 2, 2), (1, 2, 2), (0, 0, 0), (1, 0, 0)]


def test_each_panel_has_its_own_crop_psnr_and_error_map(tmp_path):
    comparison = _comparison()
    crop = comparison.crops(10, count=1)[0]
    panels = comparison.panels(crop)
    assert [panel.label for panel in panels] == ["HR", "bicubic", "l1, seed 0", "grad2, seed 1"]
    hr = comparison.hrs[1][20:30, 5:15]
    expected = psnr(comparison.outputs["grad2"][1][20:30, 5:15], hr, 0, True)
    assert panels[3].caption == f"crop PSNR {expected:.2f} dB" and panels[2].caption == "crop PSNR inf dB"
    assert panels[0].error is None and panels[2].error.max() == 0.0
    assert panels[3].error == pytest.approx(np.abs(255.0 - 2.0 * hr.astype(float)).mean(axis=2))
    path = comparison.save(10, tmp_path / "comparison.png")
    with Image.open(path) as png:
        assert png.format == "PNG" and png.height > png.width > 400  # three crops, each two rows
