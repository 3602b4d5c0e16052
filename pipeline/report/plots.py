"""Result plots drawn from the ``metrics.json`` tree: the perception-distortion plane and PSNR bars.

The perception-distortion plane (Blau & Michaeli 2018, "The Perception-Distortion Tradeoff") puts
distortion (PSNR, x) against perceptual distance (LPIPS, y, lower is better): one labelled point
per objective, error bars spanning one standard deviation over seeds. Without LPIPS the y axis
is SSIM, which is a distortion measure too; the axis label says so.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from pipeline.report.figures import new_figure, save_figure
from pipeline.report.metrics_file import BASELINE

LABELS = {"psnr": "PSNR (dB, higher is better)", "ssim": "SSIM (higher is better)",
          "lpips": "LPIPS (lower is better)"}


def has_values(entry: dict[str, Any], metric: str) -> bool:
    return "mean" in entry.get(metric, {})


def perception_axis(objectives: dict[str, dict[str, Any]]) -> str:
    """The y metric of the plane: LPIPS when every objective has a value, else SSIM."""
    return "lpips" if all(has_values(entry, "lpips") for entry in objectives.values()) else "ssim"


def perception_distortion_plot(objectives: dict[str, dict[str, Any]], title: str, path: Path) -> Path:
    """``objectives`` maps a name to its metric entries (one benchmark and scale of ``metrics.json``)."""
    y_metric = perception_axis(objectives)
    figure = new_figure(6.0, 4.5)
    axis = figure.subplots()
    for name, entry in objectives.items():
        x, y = entry["psnr"], entry[y_metric]
        marker = "s" if name == BASELINE else "o"
        axis.errorbar(x["mean"], y["mean"], xerr=x["std"] or 0.0, yerr=y["std"] or 0.0, fmt=marker, capsize=3)
        axis.annotate(name, (x["mean"], y["mean"]), textcoords="offset points", xytext=(5, 5), fontsize=8)
    axis.set_xlabel(LABELS["psnr"])
    axis.set_ylabel(LABELS[y_metric])
    axis.set_title(title if y_metric == "lpips" else f"{title} (LPIPS unavailable: SSIM instead)", fontsize=10)
    axis.grid(alpha=0.3)
    return save_figure(figure, path)


def psnr_bars(benchmarks: dict[str, dict[str, dict[str, Any]]], title: str, path: Path) -> Path:
    """Grouped bars: one group per benchmark, one bar per objective (mean PSNR, one-std error bars).

    ``benchmarks`` maps a benchmark to ``{objective: metric entries}`` at one scale; an objective
    missing from a benchmark leaves a gap.
    """
    names = sorted({name for objectives in benchmarks.values() for name in objectives},
                   key=lambda name: (name != BASELINE, name))
    width = 0.8 / len(names)
    figure = new_figure(max(5.0, 1.0 + 0.35 * len(names) * len(benchmarks)), 4.0)
    axis = figure.subplots()
    positions = np.arange(len(benchmarks))
    lowest = min(entry["psnr"]["mean"] for objectives in benchmarks.values() for entry in objectives.values())
    for index, name in enumerate(names):
        entries = [objectives.get(name) for objectives in benchmarks.values()]
        means = [entry["psnr"]["mean"] if entry else np.nan for entry in entries]
        errors = [(entry["psnr"]["std"] or 0.0) if entry else 0.0 for entry in entries]
        axis.bar(positions + (index - (len(names) - 1) / 2) * width, means, width, yerr=errors, capsize=2,
                 label=name)
    axis.set_xticks(positions, list(benchmarks))
    axis.set_ylim(bottom=np.floor(lowest - 1.0))
    axis.set_ylabel(LABELS["psnr"])
    axis.set_title(title, fontsize=10)
    axis.legend(fontsize=8, ncols=min(4, len(names)))
    axis.grid(axis="y", alpha=0.3)
    return save_figure(figure, path)
