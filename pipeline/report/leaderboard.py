"""``results/leaderboard.md``: one table per benchmark and scale from the ``metrics.json`` tree.

Rows are the bicubic baseline, then the objectives by name; the best mean of each column is in
bold (higher PSNR/SSIM, lower LPIPS and decode time). Each row links to its MLflow run.
"""

from __future__ import annotations

from typing import Any

from pipeline.report.metrics_file import HIGHER_IS_BETTER, METRICS

HEADERS = {"psnr": "PSNR (dB) ↑", "ssim": "SSIM ↑", "lpips": "LPIPS ↓", "decode_ms_per_mp": "decode (ms/MP) ↓"}
DIGITS = {"psnr": 2, "ssim": 4, "lpips": 4, "decode_ms_per_mp": 3}
MISSING = "–"


def best_means(objectives: dict[str, dict[str, Any]]) -> dict[str, float]:
    """The best mean of each metric over the rows that have one."""
    best = {}
    for metric in METRICS:
        means = [entry[metric]["mean"] for entry in objectives.values() if "mean" in entry.get(metric, {})]
        if means:
            best[metric] = max(means) if HIGHER_IS_BETTER[metric] else min(means)
    return best


def format_cell(entry: dict[str, Any] | None, metric: str, best: float | None) -> str:
    """``mean ± std`` at the metric's precision, bold when it is the column's best."""
    if not entry:
        return MISSING
    if "unavailable" in entry:
        return "unavailable"
    digits = DIGITS[metric]
    text = f"{entry['mean']:.{digits}f}" + (f" ± {entry['std']:.{digits}f}" if entry["std"] is not None else "")
    return f"**{text}**" if entry["mean"] == best else text


def table(objectives: dict[str, dict[str, Any]], links: dict[str, str]) -> list[str]:
    """Markdown lines of one benchmark/scale table; ``objectives`` in row order."""
    best = best_means(objectives)
    lines = ["| objective | " + " | ".join(HEADERS[m] for m in METRICS) + " | models | MLflow run |",
             "|---|" + "---:|" * len(METRICS) + "---:|---|"]
    for name, entry in objectives.items():
        cells = [format_cell(entry.get(metric), metric, best.get(metric)) for metric in METRICS]
        models = entry["psnr"]["n"]
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {models} | {links.get(name, MISSING)} |")
    return lines


def unavailable_reasons(tree: dict[str, Any]) -> dict[str, str]:
    """Metric -> reason, for every metric reported unavailable anywhere in ``tree``."""
    return {metric: value["unavailable"] for scales in tree.values() for objectives in scales.values()
            for entry in objectives.values() for metric, value in entry.items() if "unavailable" in value}


def render_leaderboard(tree: dict[str, Any], statement: str, links: dict[str, str], notes: list[str],
                       model_scales: dict[str, int]) -> str:
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
            lines += table(objectives, links) + [""]
    return "\n".join(lines)
