"""The leaderboard's first screen: the answer across benchmarks per trained scale
(``pipeline.report.summary``) and what ran: each objective's name as it ran (``pipeline.report.variants``),
its chosen settings, its models and the switch to its paper's setting. The same summary is written to
``results/summary.md`` (quoted by the docs) and set as the sweep's MLflow parent run description.
"""

from __future__ import annotations

from pipeline.report.convergence import Convergence
from pipeline.report.per_image import PerImageScores
from pipeline.report.summary import render_summary
from pipeline.report.sweep_outputs import TrainedObjective
from pipeline.report.variants import DECODE_SEPARATOR, label, paper_switches, settings

SUMMARY_HEADING = "## The answer across benchmarks"


def row_labels(trained: list[TrainedObjective], methods: set[str]) -> dict[str, str]:
    """Method (an objective or ``<objective>@<decode>``) -> its name as it ran, ``cs (ordered head)``."""
    losses = {objective.name: objective.trained_with["loss"] for objective in trained}
    return {method: label(method, losses[base]) for method in methods
            if (base := method.split(DECODE_SEPARATOR, 1)[0]) in losses}


def summary_lines(scores: PerImageScores, benchmarks_at: dict[int, list[str]], labels: dict[str, str],
                  converged: dict[str, Convergence]) -> list[str]:
    """The summary section: one pooled table per scale with models."""
    lines = [SUMMARY_HEADING, ""]
    for scale, benchmarks in sorted(benchmarks_at.items()):
        lines += render_summary(scores, benchmarks, scale, labels, converged) + [""]
    return lines[:-1]


def what_ran(trained: list[TrainedObjective]) -> list[str]:
    """A table: each objective as it ran, its loss settings and searched values, its models, and the
    ``dvc exp run`` switches to its paper's setting."""
    lines = ["## What ran", "",
             "Each objective's loss as trained (the sweep's chosen values marked *searched*), its models, and the "
             "switches that give it its paper's setting instead (all at once: `params-paper.yaml`).", "",
             "| objective | loss | models (seeds) | the paper's setting |", "|---|---|---|---|"]
    for objective in trained:
        loss = objective.trained_with["loss"]
        switches = " ".join(f"`{switch}`" for switch in paper_switches(objective.name, loss)) or "as run"
        seeds = ", ".join(map(str, sorted(objective.checkpoints)))
        lines.append(f"| {label(objective.name, loss)} | {settings(loss, objective.info.get('values') or {})} | "
                     f"{len(objective.checkpoints)} ({seeds}) | {switches} |")
    return lines
