"""Plot of spectral fidelity: each method's per-image ``hf_ratio`` (``pipeline.metrics.spectrum``).

One figure per benchmark and scale, one column per method (bicubic first), one dot per image and
training seed, the method's mean as a bar; log y axis with a line at 1 (HR's energy), so "blurrier
than HR" lies below it and "over-sharpened" above it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pipeline.report.figures import new_figure, save_figure
from pipeline.report.metrics_file import BASELINE
from pipeline.report.per_image import PerImageScores

METRIC = "hf_ratio"


def spectral_ratio_plot(scores: PerImageScores, benchmark: str, scale: int, path: Path) -> Path | None:
    """Write the plot of ``benchmark`` x``scale`` to ``path``; None when fewer than two methods have
    ``hf_ratio`` (nothing to compare)."""
    methods = sorted((method for method in scores.methods(benchmark, scale)
                      if scores.has(benchmark, scale, method, METRIC)), key=lambda name: (name != BASELINE, name))
    if len(methods) < 2:
        return None
    figure = new_figure(max(4.5, 1.5 + 0.7 * len(methods)), 4.0)
    axis = figure.subplots()
    for position, method in enumerate(methods):
        values = scores.matrix(benchmark, scale, method, METRIC).ravel()
        values = values[np.isfinite(values) & (values > 0)]
        spread = np.linspace(-0.15, 0.15, values.size) if values.size > 1 else np.zeros(values.size)
        axis.scatter(position + spread, values, s=10, alpha=0.6)
        if values.size:
            axis.hlines(values.mean(), position - 0.3, position + 0.3, color="black", linewidth=1.5)
    axis.axhline(1.0, color="grey", linestyle="--", linewidth=1.0)
    axis.set_yscale("log")
    axis.set_xticks(range(len(methods)), methods, rotation=30, ha="right")
    axis.set_ylabel("high-frequency energy SR / HR")
    axis.set_title(f"{benchmark} x{scale}: energy above the LR Nyquist (1 = HR; bar: mean)", fontsize=10)
    axis.grid(axis="y", alpha=0.3)
    return save_figure(figure, path)
