"""Training curves: a tidy CSV, one PNG per objective and one of every objective's validation PSNR.

``curves.csv`` has one row per logged value: ``objective, step, metric, value`` (``step`` counts
completed iterations). Each objective's PNG shows its training loss terms (``train/<term>``, left)
and its validation PSNR against the bicubic PSNR of the same images (right); an objective's own
diagnostics (``train/<group>/<name>``, e.g. TLW's ``tlw/criterion``, ``tlw/w_mean``, ``tlw/k``) have
other units, so each gets an axis of its own in a second row. ``validation_psnr.png`` draws one
line per objective, with the bicubic PSNR dashed.
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from pathlib import Path
from typing import NamedTuple

from pipeline.report.figures import new_figure, save_figure
from pipeline.report.metrics_file import write_text

COLUMNS = ("objective", "step", "metric", "value")
VALIDATION_METRICS = {"val/psnr": "validation PSNR", "val/bicubic_psnr": "bicubic PSNR (same images)"}
SKIPPED_TRAINING_METRICS = ("train/lr",)


class CurvePoint(NamedTuple):
    objective: str
    step: int
    metric: str
    value: float


def write_curves_csv(points: list[CurvePoint], path: Path) -> Path:
    """Write ``points`` sorted by objective, metric and step (a header row even when empty)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(COLUMNS)
    for point in sorted(points, key=lambda p: (p.objective, p.metric, p.step)):
        writer.writerow([point.objective, point.step, point.metric, repr(float(point.value))])
    write_text(path, buffer.getvalue())
    return Path(path)


def is_diagnostic(metric: str) -> bool:
    """``train/<group>/<name>``: an objective's diagnostic, not a loss term."""
    return metric.startswith("train/") and metric.count("/") > 1


def plot_training_curves(objective: str, points: list[CurvePoint], path: Path) -> Path:
    """Loss terms and validation PSNR of one objective's run over iterations, and its diagnostics."""
    series: dict[str, list[tuple[int, float]]] = defaultdict(list)
    for point in sorted(points, key=lambda p: p.step):
        series[point.metric].append((point.step, point.value))
    diagnostics = sorted(metric for metric in series if is_diagnostic(metric))
    figure = new_figure(10.0, 3.8 if not diagnostics else 6.8)
    rows = figure.subfigures(2 if diagnostics else 1, 1, squeeze=False)[:, 0]
    loss_axis, psnr_axis = rows[0].subplots(1, 2)
    for metric in sorted(series):
        if metric.startswith("train/") and metric not in SKIPPED_TRAINING_METRICS and not is_diagnostic(metric):
            steps, values = zip(*series[metric])
            loss_axis.plot(steps, values, label=metric.removeprefix("train/"))
    for metric, label in VALIDATION_METRICS.items():
        if metric in series:
            steps, values = zip(*series[metric])
            psnr_axis.plot(steps, values, "o-" if metric == "val/psnr" else "--", label=label)
    for axis, title, unit in ((loss_axis, "training loss terms", "loss"), (psnr_axis, "validation", "PSNR (dB)")):
        axis.set_xlabel("iteration")
        axis.set_ylabel(unit)
        axis.set_title(f"{objective}: {title}", fontsize=10)
        axis.grid(alpha=0.3)
        if axis.get_legend_handles_labels()[0]:
            axis.legend(fontsize=8)
    if diagnostics:
        for axis, metric in zip(rows[1].subplots(1, len(diagnostics), squeeze=False)[0], diagnostics):
            steps, values = zip(*series[metric])
            axis.plot(steps, values)
            axis.set_xlabel("iteration")
            axis.set_title(metric.removeprefix("train/"), fontsize=9)
            axis.grid(alpha=0.3)
    return save_figure(figure, path)


def plot_validation_curves(points: list[CurvePoint], path: Path) -> Path:
    """Validation PSNR over iterations, one line per objective, and the bicubic PSNR of the same images."""
    figure = new_figure(7.5, 4.0)
    axis = figure.subplots()
    bicubic: list[tuple[int, float]] = []
    for objective in sorted({point.objective for point in points}):
        mine = sorted((p.step, p.value) for p in points if p.objective == objective and p.metric == "val/psnr")
        if mine:
            axis.plot(*zip(*mine), "o-", markersize=3, label=objective)
        bicubic = bicubic or sorted((p.step, p.value) for p in points
                                    if p.objective == objective and p.metric == "val/bicubic_psnr")
    if bicubic:
        axis.plot(*zip(*bicubic), "--", color="black", label="bicubic")
    axis.set_xlabel("iteration")
    axis.set_ylabel("validation PSNR (dB)")
    axis.set_title("validation PSNR of each objective's best run", fontsize=10)
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.02, 0.5))
    return save_figure(figure, path)
