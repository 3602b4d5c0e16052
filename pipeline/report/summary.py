"""The answer across benchmarks: each objective against L1, pooled over every benchmark image and seed.

For one scale, an objective's pooled difference to the reference (``l1``, else bicubic) on a metric is
the paired difference (``pipeline.report.verdicts``) over the rows of every benchmark stacked: the
same images and training seeds for both, each benchmark image one row. Its verdict follows the rules
of ``pipeline.report.evidence`` (two seeds at least; none for a model whose pooled PSNR is not above
bicubic's). Beside it: on how many benchmarks the objective's own PSNR difference is *better*, and
its convergence (``pipeline.report.convergence``). The metrics are those of ``SUMMARY_METRICS``
that every row has in ``image_scores.csv``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipeline.report.convergence import Convergence
from pipeline.report.evidence import BELOW_BICUBIC, versus
from pipeline.report.metrics_file import BASELINE, HIGHER_IS_BETTER
from pipeline.report.per_image import PerImageScores
from pipeline.report.verdicts import BETTER, MIN_SEEDS, PairedDelta, paired_delta

REFERENCE = "l1"
SUMMARY_METRICS = ("psnr", "ssim", "lpips")
DIGITS = {"psnr": 2, "ssim": 4, "lpips": 4}
UNITS = {"psnr": " dB"}


@dataclass(frozen=True)
class Pooled:
    """One objective's ``deltas`` (metric -> pooled difference to the reference, None when unpaired) and,
    per benchmark, its own PSNR difference (``per_benchmark``)."""

    method: str
    deltas: dict[str, PairedDelta | None]
    per_benchmark: dict[str, PairedDelta | None]

    @property
    def better_on(self) -> list[str]:
        return [name for name, delta in self.per_benchmark.items() if delta is not None and delta.verdict == BETTER]


def reference_of(scores: PerImageScores, benchmarks: list[str], scale: int) -> str:
    """``l1`` when every benchmark has it, else the bicubic baseline."""
    return REFERENCE if all(REFERENCE in scores.methods(b, scale) for b in benchmarks) else BASELINE


def _stacked(scores: PerImageScores, benchmarks: list[str], scale: int, method: str, baseline: str,
             metric: str) -> tuple[np.ndarray, np.ndarray] | None:
    """Every benchmark's ``images x seeds`` rows of ``method`` and ``baseline`` on their shared seeds, stacked."""
    if not all(scores.has(b, scale, name, metric) for b in benchmarks for name in (method, baseline)):
        return None
    shared = set.intersection(*(set(scores.seeds(b, scale, method)) for b in benchmarks))
    if baseline != BASELINE:
        shared &= set.intersection(*(set(scores.seeds(b, scale, baseline)) for b in benchmarks))
    if not shared:
        return None
    seeds = sorted(shared)
    mine = np.vstack([scores.matrix(b, scale, method, metric, seeds) for b in benchmarks])
    theirs = np.vstack([scores.matrix(b, scale, baseline, metric, None if baseline == BASELINE else seeds)
                        for b in benchmarks])
    return mine, theirs


def pooled_delta(scores: PerImageScores, benchmarks: list[str], scale: int, method: str, baseline: str,
                 metric: str) -> PairedDelta | None:
    """``method - baseline`` on ``metric`` over every benchmark's images and the shared seeds; the verdict
    is withheld when a trained model's pooled PSNR is not above bicubic's."""
    pair = _stacked(scores, benchmarks, scale, method, baseline, metric)
    if pair is None:
        return None
    delta = paired_delta(*pair, higher_is_better=HIGHER_IS_BETTER.get(metric, True))
    if baseline == BASELINE:
        return delta
    weak = [name for name in (method, baseline) if _pooled_below_bicubic(scores, benchmarks, scale, name)]
    return delta.withheld(f"{' and '.join(weak)} {BELOW_BICUBIC}") if weak else delta


def _pooled_below_bicubic(scores: PerImageScores, benchmarks: list[str], scale: int, method: str) -> bool:
    pair = _stacked(scores, benchmarks, scale, method, BASELINE, "psnr")
    return pair is not None and bool(pair[0].mean() <= pair[1].mean())


def summarize(scores: PerImageScores, benchmarks: list[str], scale: int) -> tuple[str, list[Pooled]]:
    """The reference and every other trained method's pooled differences, best pooled ΔPSNR first."""
    reference = reference_of(scores, benchmarks, scale)
    methods = sorted(set.intersection(*(set(scores.methods(b, scale)) for b in benchmarks)) - {BASELINE, reference})
    metrics = [m for m in SUMMARY_METRICS if all(scores.has(b, scale, name, m) for b in benchmarks
                                                 for name in (*methods, reference))]
    rows = [Pooled(method, {m: pooled_delta(scores, benchmarks, scale, method, reference, m) for m in metrics},
                   {b: versus(scores, b, scale, method, reference) for b in benchmarks}) for method in methods]
    return reference, sorted(rows, key=lambda row: (-_mean(row.deltas.get("psnr")), row.method))


def _mean(delta: PairedDelta | None) -> float:
    return -np.inf if delta is None else delta.mean


def _cell(delta: PairedDelta | None, metric: str) -> str:
    if delta is None:
        return "–"
    verdict = f"**{delta.verdict}**" if delta.is_evidence and delta.verdict != "not established" else delta.verdict
    return f"{delta.text(DIGITS.get(metric, 3))}{UNITS.get(metric, '')} {verdict}"


def render_summary(scores: PerImageScores, benchmarks: list[str], scale: int, labels: dict[str, str],
                   converged: dict[str, Convergence]) -> list[str]:
    """Markdown lines: the pooled table of one scale and the sentence naming the objectives better than
    the reference on every benchmark."""
    reference, rows = summarize(scores, benchmarks, scale)
    if not rows:
        return [f"Only `{reference}` was trained at x{scale}: there is nothing to compare it with."]
    metrics = list(rows[0].deltas)
    images = sum(scores.matrix(b, scale, BASELINE, "psnr").shape[0] for b in benchmarks
                 if scores.has(b, scale, BASELINE, "psnr"))
    seeds = sorted({d.seeds for row in rows for d in row.deltas.values() if d is not None})
    lines = [f"Each objective minus `{reference}` at x{scale}, paired over the same {images} images of "
             f"{_names(benchmarks)} and the same training seeds ({_seeds(seeds)}): mean, 95% bootstrap interval "
             "(images x seeds), verdict. Ranked by ΔPSNR; per-benchmark tables follow.", "",
             "| objective | " + " | ".join(f"Δ{m.upper()} vs {reference}" for m in metrics)
             + f" | PSNR better than {reference} on | validation PSNR, last quarter of training |",
             "|---|" + "---|" * len(metrics) + "---|---|"]
    for row in rows:
        better = row.better_on
        lines.append(f"| {labels.get(row.method, row.method)} | "
                     + " | ".join(_cell(row.deltas[m], m) for m in metrics)
                     + f" | {len(better)} of {len(benchmarks)}{': ' + ', '.join(better) if better else ''}"
                     + f" | {converged[row.method].text() if row.method in converged else '–'} |")
    weak = [name for name in (reference, *(row.method for row in rows)) if name != BASELINE
            and _pooled_below_bicubic(scores, benchmarks, scale, name)]
    lines += ["", everywhere_sentence(rows, reference, benchmarks, seeds)]
    if weak:
        names = ", ".join(f"`{name}`" for name in weak)
        lines += ["", f"**Below bicubic** (pooled PSNR): {names}; such a model has not learnt the task at this "
                      "budget, so no verdict is drawn from it."]
    return lines


def everywhere_sentence(rows: list[Pooled], reference: str, benchmarks: list[str], seeds: list[int]) -> str:
    """``**Better than l1 in PSNR on every benchmark (A, B):** grad2.`` or why none is."""
    winners = [row.method for row in rows if len(row.better_on) == len(benchmarks)]
    head = f"**Better than `{reference}` in PSNR on every benchmark ({_names(benchmarks)}):**"
    if winners:
        return f"{head} {', '.join(f'`{name}`' for name in winners)}."
    if seeds and max(seeds) < MIN_SEEDS:
        return (f"{head} none can be, with {_seeds(seeds)} per objective: a verdict needs {MIN_SEEDS} seeds at least "
                "(`sweep.seeds`).")
    return f"{head} none."


def _names(benchmarks: list[str]) -> str:
    return ", ".join(benchmarks)


def _seeds(seeds: list[int]) -> str:
    counts = "/".join(map(str, seeds)) or "0"
    return f"{counts} seed{'s' * (seeds != [1])}"
