"""The spectral plot is drawn from the per-image hf_ratio, and skipped where fewer than two methods have it."""

from __future__ import annotations

from PIL import Image

from pipeline.report.per_image import PerImageScores
from pipeline.report.spectral_plot import spectral_ratio_plot


def test_a_png_per_benchmark_where_hf_ratio_was_measured(tmp_path):
    scores = PerImageScores()
    for method, ratio in (("bicubic", 0.1), ("l1", 0.5), ("cs", 1.2)):
        for image in range(3):
            scores.add("Set5", 4, method, None if method == "bicubic" else 0, f"im{image}",
                       {"psnr": 30.0, "hf_ratio": ratio * (1 + image / 10)})
    scores.add("Set14", 4, "l1", 0, "im0", {"psnr": 30.0})
    scores.add("Set14", 4, "bicubic", None, "im0", {"psnr": 30.0, "hf_ratio": 0.1})  # alone: nothing to compare
    path = spectral_ratio_plot(scores, "Set5", 4, tmp_path / "spectrum.png")
    assert path == tmp_path / "spectrum.png"
    with Image.open(path) as image:
        assert image.format == "PNG" and image.width > 300
    assert spectral_ratio_plot(scores, "Set14", 4, tmp_path / "none.png") is None
    assert not (tmp_path / "none.png").exists()
