"""Result plots drawn from the ``scores.json`` tree: PSNR gains over a reference, and the
perception-distortion plane.

The gains are ``mean PSNR(objective) - mean PSNR(reference)`` per benchmark (the reference is the
bicubic baseline, or L1, in which case bicubic is left out: its bar would squash differences of
hundredths of a dB), so differences of a tenth of a dB are visible; each bar carries an error bar
given by the caller (e.g. a paired bootstrap confidence interval of the difference), by default one
standard deviation of the objective's PSNR over seeds. Bars are in rank order (mean gain over the
benchmarks, best first) and every objective keeps its colour (``figures.objective_colour``).

The perception-distortion plane (Blau & Michaeli 2018, "The Perception-Distortion Tradeoff") puts
distortion (PSNR, x) against perceptual distance (LPIPS, y, lower is better): one point per
objective, error bars spanning one standard deviation over seeds, named in the legend (labels
beside the points would collide). It is drawn only where every objective has an LPIPS value.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from matplotlib.figure import Figure

from pipeline.report.figures import new_figure, objective_colour, save_figure
from pipeline.report.metrics_file import BASELINE

LABELS = {"psnr": "PSNR (dB, higher is better)", "ssim": "SSIM (higher is better)",
          "lpips": "LPIPS (lower is better)"}
Interval = tuple[float, float]  # (low, high) of a PSNR difference, in dB


def has_values(entry: dict[str, Any], metric: str) -> bool:
    return "mean" in entry.get(metric, {})


def has_perceptual_metric(objectives: dict[str, dict[str, Any]]) -> bool:
    """Whether every objective of one benchmark and scale has an LPIPS value."""
    return all(has_values(entry, "lpips") for entry in objectives.values())


def perception_distortion_plot(objectives: dict[str, dict[str, Any]], title: str, path: Path) -> Path:
    """``objectives`` maps a name to its metric entries (one benchmark and scale of ``scores.json``),
    each with an LPIPS value (see ``has_perceptual_metric``)."""
    figure = new_figure(6.5, 4.5)
    axis = figure.subplots()
    for name, entry in objectives.items():
        x, y = entry["psnr"], entry["lpips"]
        axis.errorbar(x["mean"], y["mean"], xerr=x["std"] or 0.0, yerr=y["std"] or 0.0,
                      fmt="s" if name == BASELINE else "o", capsize=3, label=name, color=objective_colour(name))
    axis.set_xlabel(LABELS["psnr"])
    axis.set_ylabel(LABELS["lpips"])
    axis.set_title(title, fontsize=10)
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.02, 0.5))
    return save_figure(figure, path)


def psnr_gains(benchmarks: dict[str, dict[str, dict[str, Any]]], reference: str) -> dict[tuple[str, str], float]:
    """``(benchmark, objective) -> mean PSNR(objective) - mean PSNR(reference)`` for every objective but the reference."""
    return {(benchmark, name): entry["psnr"]["mean"] - objectives[reference]["psnr"]["mean"]
            for benchmark, objectives in benchmarks.items() for name, entry in objectives.items() if name != reference}


def psnr_gain_bars(benchmarks: dict[str, dict[str, dict[str, Any]]], title: str, path: Path,
                   reference: str = BASELINE, errors: dict[tuple[str, str], Interval] | None = None,
                   error_label: str = "±1 std over seeds") -> Path:
    """``gain_bar_figure`` saved to ``path``."""
    return save_figure(gain_bar_figure(benchmarks, title, reference, errors, error_label), path)


def ranked_names(benchmarks: dict[str, dict[str, dict[str, Any]]], reference: str) -> list[str]:
    """The objectives to draw against ``reference`` (never bicubic), best mean gain over the benchmarks first."""
    gains = psnr_gains(benchmarks, reference)
    names = {name for objectives in benchmarks.values() for name in objectives} - {reference, BASELINE}
    return sorted(names, key=lambda name: (-np.mean([g for (_, n), g in gains.items() if n == name]), name))


def gain_bar_figure(benchmarks: dict[str, dict[str, dict[str, Any]]], title: str, reference: str = BASELINE,
                    errors: dict[tuple[str, str], Interval] | None = None,
                    error_label: str = "±1 std over seeds") -> Figure:
    """Grouped bars of PSNR gain over ``reference``: one group per benchmark, one bar per other objective
    in rank order (``ranked_names``), each in its objective's colour.

    ``benchmarks`` maps a benchmark to ``{objective: metric entries}`` at one scale, each holding
    ``reference``. ``errors`` maps ``(benchmark, objective)`` to the interval of the gain drawn as its
    error bar (described by ``error_label``); without it, one std of the objective's PSNR over seeds.
    An objective missing from a benchmark leaves a gap.
    """
    names = ranked_names(benchmarks, reference)
    width = 0.8 / max(1, len(names))
    figure = new_figure(max(6.5, 2.5 + 0.4 * len(names) * len(benchmarks)), 4.2)
    axis = figure.subplots()
    positions = np.arange(len(benchmarks))
    all_gains = psnr_gains(benchmarks, reference)
    for index, name in enumerate(names):
        gains, below, above = [], [], []
        for benchmark, objectives in benchmarks.items():
            entry = objectives.get(name)
            gain = all_gains.get((benchmark, name), np.nan)
            low, high = _interval(errors, benchmark, name, entry, gain)
            gains.append(gain)
            below.append(max(0.0, gain - low) if entry else 0.0)
            above.append(max(0.0, high - gain) if entry else 0.0)
        axis.bar(positions + (index - (len(names) - 1) / 2) * width, gains, width, yerr=[below, above], capsize=2,
                 label=name, color=objective_colour(name))
    axis.axhline(0.0, color="black", linewidth=1.0)
    axis.set_xticks(positions, list(benchmarks))
    axis.set_ylabel(f"PSNR gain over {reference} (dB)")
    axis.set_xlabel(f"error bars: {error_label}", fontsize=8)
    axis.set_title(title, fontsize=11)
    axis.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.02, 0.5), title="best first", title_fontsize=8)
    axis.grid(axis="y", alpha=0.3)
    return figure


def _interval(errors: dict[tuple[str, str], Interval] | None, benchmark: str, name: str,
              entry: dict[str, Any] | None, gain: float) -> Interval:
    if not entry:
        return gain, gain
    if errors is not None:
        return errors.get((benchmark, name), (gain, gain))
    spread = entry["psnr"]["std"] or 0.0
    return gain - spread, gain + spread
