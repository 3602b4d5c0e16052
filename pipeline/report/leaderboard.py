"""``results/leaderboard.md``: the answer across benchmarks first (``pipeline.report.summary``), what
ran, then one ranked table per benchmark and scale, and last what the numbers mean.

Objectives are ranked by mean PSNR; bicubic closes each table as the reference. Beside the means
(± sample std over seeds) each row has its paired PSNR difference to L1 and to bicubic with the
95% bootstrap interval and verdict (``pipeline.report.evidence``). The first row is marked the
winner only when it is established better than bicubic and than every other objective (so never
on one seed, nor below bicubic); otherwise a sentence says why there is none. A metric that is
unavailable for every row has no column (its reason is said once). Each row shows what its models
cost to train (``pipeline.report.training_cost``: training FLOPs per model and the median step time)
and names its MLflow runs.
"""

from __future__ import annotations

from typing import Any

from pipeline.report.evidence import RANKED_BY, versus
from pipeline.report.metrics_file import BASELINE, METRICS
from pipeline.report.per_image import PerImageScores
from pipeline.report.training_cost import TrainingCost, cost_of, flops_text
from pipeline.report.verdicts import BETTER, PairedDelta

HEADERS = {"psnr": "PSNR (dB) ↑", "ssim": "SSIM ↑", "lpips": "LPIPS ↓", "fid": "FID ↓",
           "decode_ms_per_mp": "SR time (ms/MP) ↓"}
DIGITS = {"psnr": 2, "ssim": 4, "lpips": 4, "fid": 2, "decode_ms_per_mp": 0}
MISSING = "–"
REFERENCE = "l1"
COST_HEADERS = ("train FLOPs", "step (ms)")
COST_NOTE = ("*train FLOPs* are each model's training FLOPs (FLOPs per step, counted by "
             "`torch.utils.flop_counter` on the configured batch, times the iterations it ran; machine-independent) "
             "and *step (ms)* its median training step time on the machine that trained it, means over the "
             "objective's models; a decode or self-ensemble row shows its objective's training.")


def format_cell(entry: dict[str, Any] | None, metric: str) -> str:
    """``mean ± std`` at the metric's precision; ``unavailable`` for a metric that could not be computed."""
    if not entry:
        return MISSING
    if "unavailable" in entry:
        return "unavailable"
    digits = DIGITS[metric]
    return f"{entry['mean']:.{digits}f}" + (f" ± {entry['std']:.{digits}f}" if entry["std"] is not None else "")


def ranking(objectives: dict[str, dict[str, Any]]) -> list[str]:
    """Objective names by mean PSNR, best first (bicubic excluded)."""
    trained = [name for name in objectives if name != BASELINE]
    return sorted(trained, key=lambda name: (-objectives[name][RANKED_BY]["mean"], name))


def why_no_winner(scores: PerImageScores, benchmark: str, scale: int, ranked: list[str]) -> str | None:
    """Why the first of ``ranked`` is not the winner (None when it is): not better than bicubic, or its
    PSNR lead over others not established or not evidence (one seed, a model below bicubic)."""
    if len(ranked) < 2:
        return None
    first = ranked[0]
    over_bicubic = versus(scores, benchmark, scale, first, BASELINE)
    if over_bicubic is not None and over_bicubic.verdict != BETTER:
        return f"{first} ranks first, but its PSNR over {BASELINE} is {over_bicubic.verdict}."
    reasons: dict[str, list[str]] = {}
    for name in ranked[1:]:
        delta = versus(scores, benchmark, scale, first, name)
        if delta is None or delta.verdict != BETTER:
            reasons.setdefault("unpaired" if delta is None else delta.verdict, []).append(name)
    if not reasons:
        return None
    return (f"{first} ranks first, but its PSNR lead is "
            + "; ".join(f"{verdict} over {', '.join(names)}" for verdict, names in reasons.items())
            + " (a winner needs a paired 95% interval above 0 on 2 seeds at least).")


def _delta_cell(delta: PairedDelta | None) -> str:
    return MISSING if delta is None else f"{delta.text(2)} {delta.verdict}"


def cost_cells(cost: TrainingCost | None) -> list[str]:
    """``train FLOPs`` (``2.05e12``) and ``step (ms)`` (one decimal) of a row; ``–`` where unknown."""
    flops = None if cost is None else cost.flops
    step = None if cost is None else cost.mean_step_ms
    return [MISSING if flops is None else flops_text(flops), MISSING if step is None else f"{step:.1f}"]


def shown_metrics(tree: dict[str, Any]) -> list[str]:
    """The metrics of ``METRICS`` measured for some row of ``tree`` (the others are only unavailable)."""
    return [metric for metric in METRICS if any("unavailable" not in entry.get(metric, {"unavailable": ""})
                                                 for scales in tree.values() for objectives in scales.values()
                                                 for entry in objectives.values())]


def table(objectives: dict[str, dict[str, Any]], scores: PerImageScores, benchmark: str, scale: int,
          links: dict[str, str], labels: dict[str, str], metrics: list[str],
          costs: dict[str, TrainingCost] | None = None) -> list[str]:
    """Markdown lines of one benchmark/scale table, and the sentence on why there is no winner; with
    ``costs`` (objective -> its training cost), the two training-cost columns before *models*."""
    ranked = ranking(objectives)
    reason = why_no_winner(scores, benchmark, scale, ranked)
    cost_headers = "".join(f" {header} |" for header in COST_HEADERS) if costs else ""
    lines = ["| rank | objective | " + " | ".join(HEADERS[m] for m in metrics)
             + f" | ΔPSNR vs {REFERENCE} [95% CI] | ΔPSNR vs {BASELINE} [95% CI] |"
             + f"{cost_headers} models | MLflow runs |",
             "|---:|---|" + "---:|" * len(metrics) + "---|---|" + "---:|" * (2 if costs else 0) + "---:|---|"]
    for rank, name in enumerate([*ranked, BASELINE], start=1):
        if name not in objectives:
            continue
        entry = objectives[name]
        cells = [format_cell(entry.get(metric), metric) for metric in metrics]
        shown = labels.get(name, name)
        label = f"**{shown}** (winner)" if rank == 1 and reason is None and len(ranked) > 1 else shown
        place = "ref." if name == BASELINE else str(rank)
        lines.append(f"| {place} | {label} | " + " | ".join(cells)
                     + f" | {_delta_cell(versus(scores, benchmark, scale, name, REFERENCE))}"
                     + f" | {_delta_cell(versus(scores, benchmark, scale, name, BASELINE))}"
                     + "".join(f" | {cell}" for cell in (cost_cells(cost_of(costs, name)) if costs else []))
                     + f" | {entry[RANKED_BY]['n']} | {links.get(name, MISSING)} |")
    if reason:
        lines += ["", f"No winner: {reason}"]
    return lines


def unavailable_reasons(tree: dict[str, Any]) -> dict[str, str]:
    """Metric -> reason, for every metric reported unavailable anywhere in ``tree``."""
    return {metric: value["unavailable"] for scales in tree.values() for objectives in scales.values()
            for entry in objectives.values() for metric, value in entry.items() if "unavailable" in value}


def render_leaderboard(tree: dict[str, Any], scores: PerImageScores, front: list[str], statement: str,
                       links: dict[str, str], notes: list[str], model_scales: dict[str, int],
                       labels: dict[str, str] | None = None, costs: dict[str, TrainingCost] | None = None) -> str:
    """The whole leaderboard: ``front`` (the summary and what ran), one table per benchmark and scale,
    then ``statement`` (what the numbers mean) and ``notes`` (a bullet each, after one per unavailable
    metric and, with ``costs``, one on the training-cost columns). ``model_scales`` maps each objective
    to the scale its models were trained at, so a scale without models says so; ``labels`` names the
    rows (``cs (ordered head)``); ``costs`` maps each objective to what its models cost to train."""
    labels = labels or {}
    metrics = shown_metrics(tree)
    lines = ["# Leaderboard", "", *front, ""]
    trained_at = sorted({f"x{scale}" for scale in model_scales.values()})
    for benchmark, scales in tree.items():
        for scale, objectives in scales.items():
            lines += [f"## {benchmark} {scale}", ""]
            if scale not in trained_at:
                lines += [f"No objective was trained at {scale} (models exist at {', '.join(trained_at)}); "
                          "only the bicubic baseline is shown.", ""]
            lines += table(objectives, scores, benchmark, int(scale.removeprefix("x")), links, labels, metrics,
                           costs) + [""]
    lines += ["## What the numbers are", "", statement, ""]
    lines += [f"- {metric.upper()} is unavailable: {reason.removeprefix(f'{metric.upper()} unavailable: ')}"
              for metric, reason in unavailable_reasons(tree).items()]
    lines += [f"- {note}" for note in [*([COST_NOTE] if costs else []), *notes]]
    return "\n".join(lines) + "\n"
