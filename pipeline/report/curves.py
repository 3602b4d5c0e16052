"""Training curves: a tidy CSV for ``dvc plots`` and one PNG per objective.

``curves.csv`` has one row per logged value: ``objective, step, metric, value`` (``step`` counts
completed iterations). Each objective's PNG shows its training loss terms (left) and its
validation PSNR against the bicubic PSNR of the same images (right).
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


def plot_training_curves(objective: str, points: list[CurvePoint], path: Path) -> Path:
    """Loss terms and validation PSNR of one objective's run over iterations."""
    series: dict[str, list[tuple[int, float]]] = defaultdict(list)
    for point in sorted(points, key=lambda p: p.step):
        series[point.metric].append((point.step, point.value))
    figure = new_figure(10.0, 3.8)
    loss_axis, psnr_axis = figure.subplots(1, 2)
    for metric in sorted(series):
        if metric.startswith("train/") and metric not in SKIPPED_TRAINING_METRICS:
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
    return save_figure(figure, path)
