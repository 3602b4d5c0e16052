"""``results/leaderboard.md``: one ranked table per benchmark and scale.

Objectives are ranked by mean PSNR; bicubic closes each table as the reference. Beside the means
(± sample std over seeds) each row has its paired PSNR difference to L1 and to bicubic with the
95% bootstrap interval and verdict (``pipeline.report.verdicts``). The first row is marked the
winner only when it is established better than every other objective; otherwise the table names
the objectives within the noise of the first. Each row links to its MLflow run.
"""

from __future__ import annotations

from typing import Any

from pipeline.report.metrics_file import BASELINE, METRICS
from pipeline.report.per_image import PerImageScores
from pipeline.report.verdicts import BETTER, UNSETTLED, PairedDelta, paired_delta

HEADERS = {"psnr": "PSNR (dB) ↑", "ssim": "SSIM ↑", "lpips": "LPIPS ↓", "fid": "FID ↓",
           "decode_ms_per_mp": "SR time (ms/MP) ↓"}
DIGITS = {"psnr": 2, "ssim": 4, "lpips": 4, "fid": 2, "decode_ms_per_mp": 3}
MISSING = "–"
REFERENCE = "l1"
RANKED_BY = "psnr"


def format_cell(entry: dict[str, Any] | None, metric: str) -> str:
    """``mean ± std`` at the metric's precision; ``unavailable`` for a metric that could not be computed."""
    if not entry:
        return MISSING
    if "unavailable" in entry:
        return "unavailable"
    digits = DIGITS[metric]
    return f"{entry['mean']:.{digits}f}" + (f" ± {entry['std']:.{digits}f}" if entry["std"] is not None else "")


def versus(scores: PerImageScores, benchmark: str, scale: int, method: str, baseline: str,
           metric: str = RANKED_BY) -> PairedDelta | None:
    """The paired difference ``method - baseline`` on ``metric``, or None when they cannot be paired."""
    if method == baseline or not (scores.has(benchmark, scale, method, metric)
                                  and scores.has(benchmark, scale, baseline, metric)):
        return None
    pair = scores.paired(benchmark, scale, method, baseline, metric)
    return None if pair is None else paired_delta(*pair)


def ranking(objectives: dict[str, dict[str, Any]]) -> list[str]:
    """Objective names by mean PSNR, best first (bicubic excluded)."""
    trained = [name for name in objectives if name != BASELINE]
    return sorted(trained, key=lambda name: (-objectives[name][RANKED_BY]["mean"], name))


def within_noise_of_first(scores: PerImageScores, benchmark: str, scale: int, ranked: list[str]) -> list[str]:
    """The objectives after the first whose paired PSNR difference to it is not established."""
    tied = []
    for name in ranked[1:]:
        delta = versus(scores, benchmark, scale, ranked[0], name)
        if delta is None or delta.verdict != BETTER:
            tied.append(name)
    return tied


def _delta_cell(delta: PairedDelta | None) -> str:
    return MISSING if delta is None else f"{delta.text(2)} {delta.verdict}"


def table(objectives: dict[str, dict[str, Any]], scores: PerImageScores, benchmark: str, scale: int,
          links: dict[str, str]) -> list[str]:
    """Markdown lines of one benchmark/scale table, and the sentence on its winner."""
    ranked = ranking(objectives)
    tied = within_noise_of_first(scores, benchmark, scale, ranked) if ranked else []
    lines = ["| rank | objective | " + " | ".join(HEADERS[m] for m in METRICS)
             + f" | ΔPSNR vs {REFERENCE} [95% CI] | ΔPSNR vs {BASELINE} [95% CI] | models | MLflow run |",
             "|---:|---|" + "---:|" * len(METRICS) + "---|---|---:|---|"]
    for rank, name in enumerate([*ranked, BASELINE], start=1):
        if name not in objectives:
            continue
        entry = objectives[name]
        cells = [format_cell(entry.get(metric), metric) for metric in METRICS]
        label = f"**{name}** (winner)" if rank == 1 and not tied and len(ranked) > 1 else name
        place = "ref." if name == BASELINE else str(rank)
        lines.append(f"| {place} | {label} | " + " | ".join(cells)
                     + f" | {_delta_cell(versus(scores, benchmark, scale, name, REFERENCE))}"
                     + f" | {_delta_cell(versus(scores, benchmark, scale, name, BASELINE))}"
                     + f" | {entry['psnr']['n']} | {links.get(name, MISSING)} |")
    if tied:
        lines += ["", f"No winner: {ranked[0]} ranks first, but its PSNR lead over {', '.join(tied)} is "
                  f"{UNSETTLED} (paired 95% interval includes 0)."]
    return lines


def unavailable_reasons(tree: dict[str, Any]) -> dict[str, str]:
    """Metric -> reason, for every metric reported unavailable anywhere in ``tree``."""
    return {metric: value["unavailable"] for scales in tree.values() for objectives in scales.values()
            for entry in objectives.values() for metric, value in entry.items() if "unavailable" in value}


def render_leaderboard(tree: dict[str, Any], scores: PerImageScores, statement: str, links: dict[str, str],
                       notes: list[str], model_scales: dict[str, int]) -> str:
    """The whole leaderboard: ``statement`` (what the numbers mean), ``notes`` (a bullet each, after
    one per unavailable metric), then one table per benchmark and scale. ``model_scales`` maps each
    objective to the scale its models were trained at, so a scale without models says so."""
    lines = ["# Leaderboard", "", statement, ""]
    lines += [f"- {metric.upper()} is unavailable: {reason.removeprefix(f'{metric.upper()} unavailable: ')}"
              for metric, reason in unavailable_reasons(tree).items()]
    lines += [f"- {note}" for note in notes] + [""]
    trained_at = sorted({f"x{scale}" for scale in model_scales.values()})
    for benchmark, scales in tree.items():
        for scale, objectives in scales.items():
            lines += [f"## {benchmark} {scale}", ""]
            if scale not in trained_at:
                lines += [f"No objective was trained at {scale} (models exist at {', '.join(trained_at)}); "
                          "only the bicubic baseline is shown.", ""]
            lines += table(objectives, scores, benchmark, int(scale.removeprefix("x")), links) + [""]
    return "\n".join(lines)
