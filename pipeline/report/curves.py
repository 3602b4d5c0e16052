"""Training curves: a tidy CSV, one PNG per objective and one of every objective's validation PSNR.

``curves.csv`` has one row per logged value: ``objective, seed, step, metric, value`` (``step`` counts
completed iterations; ``seed`` is the training seed of the run). Each objective's PNG shows its
training loss terms (``train/<term>``, left, on a log axis: a cross-entropy falls by orders of
magnitude) and its validation PSNR against the bicubic PSNR of the same images (right), one line
per seed; an objective's own diagnostics (``train/<group>/<name>``, e.g. TLW's ``tlw/criterion``,
``tlw/w_mean``, ``tlw/k``) have other units, so each gets an axis of its own in a second row.
``validation_psnr.png`` draws every seed's validation PSNR in its objective's colour
(``pipeline.report.figures.objective_colour``), with the bicubic PSNR dashed.
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from pathlib import Path
from typing import NamedTuple

from matplotlib.figure import Figure

from pipeline.report.figures import new_figure, objective_colour, save_figure
from pipeline.report.metrics_file import write_text

COLUMNS = ("objective", "seed", "step", "metric", "value")
SEED_STYLES = ("-", "--", ":", "-.")
VALIDATION_PSNR, BICUBIC_PSNR = "val/psnr", "val/bicubic_psnr"
VALIDATION_METRICS = {VALIDATION_PSNR: "validation PSNR", BICUBIC_PSNR: "bicubic PSNR (same images)"}
SKIPPED_TRAINING_METRICS = ("train/lr",)


class CurvePoint(NamedTuple):
    objective: str
    seed: int | None
    step: int
    metric: str
    value: float


def write_curves_csv(points: list[CurvePoint], path: Path) -> Path:
    """Write ``points`` sorted by objective, metric and step (a header row even when empty)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(COLUMNS)
    for point in sorted(points, key=lambda p: (p.objective, p.metric, _seed_key(p.seed), p.step)):
        writer.writerow([point.objective, "" if point.seed is None else point.seed, point.step, point.metric,
                         repr(float(point.value))])
    write_text(path, buffer.getvalue())
    return Path(path)


def is_diagnostic(metric: str) -> bool:
    """``train/<group>/<name>``: an objective's diagnostic, not a loss term."""
    return metric.startswith("train/") and metric.count("/") > 1


def _seed_key(seed: int | None) -> int:
    return -1 if seed is None else seed


def _series(points: list[CurvePoint]) -> dict[str, dict[int | None, list[tuple[int, float]]]]:
    """metric -> seed -> ``(step, value)`` in step order."""
    series: dict[str, dict[int | None, list[tuple[int, float]]]] = defaultdict(lambda: defaultdict(list))
    for point in sorted(points, key=lambda p: p.step):
        series[point.metric][point.seed].append((point.step, point.value))
    return series


def _draw(axis, runs: dict[int | None, list[tuple[int, float]]], label: str, **style) -> None:
    """One line per seed in one colour, the seed told by the line style; one legend entry."""
    for index, seed in enumerate(sorted(runs, key=_seed_key)):
        steps, values = zip(*runs[seed])
        axis.plot(steps, values, SEED_STYLES[index % len(SEED_STYLES)], label=label if index == 0 else None, **style)


def plot_training_curves(objective: str, points: list[CurvePoint], path: Path) -> Path:
    """Loss terms (log axis) and validation PSNR of every seed's run of one objective over iterations,
    and its diagnostics; line styles tell the seeds apart."""
    series = _series(points)
    seeds = sorted({point.seed for point in points}, key=_seed_key)
    diagnostics = sorted(metric for metric in series if is_diagnostic(metric))
    figure = new_figure(10.0, 3.8 if not diagnostics else 6.8)
    rows = figure.subfigures(2 if diagnostics else 1, 1, squeeze=False)[:, 0]
    loss_axis, psnr_axis = rows[0].subplots(1, 2)
    palette = iter(f"C{index}" for index in range(10))
    for metric in sorted(series):
        if metric.startswith("train/") and metric not in SKIPPED_TRAINING_METRICS and not is_diagnostic(metric):
            _draw(loss_axis, series[metric], metric.removeprefix("train/"), color=next(palette), marker=".")
    if all(value > 0 for metric, runs in series.items() if metric.startswith("train/") and not is_diagnostic(metric)
           for run in runs.values() for _, value in run):
        loss_axis.set_yscale("log")
    if VALIDATION_PSNR in series:
        _draw(psnr_axis, series[VALIDATION_PSNR], VALIDATION_METRICS[VALIDATION_PSNR],
              color=objective_colour(objective), marker="o", markersize=3)
    if BICUBIC_PSNR in series:
        bicubic = series[BICUBIC_PSNR]
        steps, values = zip(*bicubic[min(bicubic, key=_seed_key)])
        psnr_axis.plot(steps, values, "--", color=objective_colour("bicubic"), label=VALIDATION_METRICS[BICUBIC_PSNR])
    seeds_text = ", ".join(f"{SEED_STYLES[i % len(SEED_STYLES)]} seed {seed}" for i, seed in enumerate(seeds))
    for axis, title, unit in ((loss_axis, "training loss terms", "loss (log scale)"),
                              (psnr_axis, "validation", "PSNR (dB)")):
        axis.set_xlabel("iteration")
        axis.set_ylabel(unit)
        axis.set_title(f"{objective}: {title}", fontsize=10)
        axis.grid(alpha=0.3)
        if axis.get_legend_handles_labels()[0]:
            axis.legend(fontsize=8)
    figure.suptitle(f"{objective}: every seed's run (line styles: {seeds_text})", fontsize=9)
    if diagnostics:
        for axis, metric in zip(rows[1].subplots(1, len(diagnostics), squeeze=False)[0], diagnostics):
            _draw(axis, series[metric], metric.removeprefix("train/"))
            axis.set_xlabel("iteration")
            axis.set_title(metric.removeprefix("train/"), fontsize=9)
            axis.grid(alpha=0.3)
    return save_figure(figure, path)


def plot_validation_curves(points: list[CurvePoint], path: Path) -> Path:
    """``validation_figure`` saved to ``path``."""
    return save_figure(validation_figure(points), path)


def validation_figure(points: list[CurvePoint]) -> Figure:
    """Validation PSNR over iterations, every seed of every objective in the objective's colour, and the
    bicubic PSNR of the same images."""
    figure = new_figure(8.0, 4.2)
    axis = figure.subplots()
    bicubic: list[tuple[int, float]] = []
    for objective in sorted({point.objective for point in points}):
        series = _series([point for point in points if point.objective == objective])
        if VALIDATION_PSNR in series:
            _draw(axis, series[VALIDATION_PSNR], objective, color=objective_colour(objective), marker="o", markersize=3)
        if not bicubic and BICUBIC_PSNR in series:
            bicubic = series[BICUBIC_PSNR][min(series[BICUBIC_PSNR], key=_seed_key)]
    if bicubic:
        axis.plot(*zip(*bicubic), "--", color=objective_colour("bicubic"), label="bicubic")
    axis.set_xlabel("iteration")
    axis.set_ylabel("validation PSNR (dB)")
    axis.set_title("Validation PSNR, every seed (line style = seed)", fontsize=10)
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.02, 0.5))
    return figure
