"""``results/verdicts.json``: a run's pooled verdicts and the budget protocol that produced them, so two
runs (equal iterations, equal training FLOPs) can be compared (``pipeline.report.protocols``).

Layout::

    {"format": 1,
     "budget": {"by": "iterations" | "flops" | "mixed", "flops": <budget or null>,
                "iterations": {<objective>: <train.iterations>}, "text": "Budget: ..."},
     "scales": {"x2": {"reference": "l1", "benchmarks": ["Set14", "Set5"],
                       "objectives": {<objective>: {<metric>: {"mean", "low", "high", "images", "seeds",
                                                               "verdict"}}}}}}

Each entry is the pooled paired difference of the objective minus the reference (``l1`` where every
benchmark has it, else bicubic) over every benchmark's images and the shared seeds, with its 95%
interval and verdict, as in ``summary.md`` (``pipeline.report.summary.pooled_delta``), on each metric
of ``VERDICT_METRICS`` that every row has. ``budget`` is ``pipeline.report.training_cost.budget_record``.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from pipeline.errors import PipelineError
from pipeline.metrics.perceptual import WEIGHT_FREE
from pipeline.report.metrics_file import BASELINE, write_text
from pipeline.report.per_image import PerImageScores
from pipeline.report.summary import pooled_delta, reference_of

FORMAT = 1
VERDICTS_FILE = "verdicts.json"
VERDICT_METRICS = ("psnr", "ssim", "lpips", *WEIGHT_FREE)


def pooled_verdicts(scores: PerImageScores, benchmarks_at: dict[int, list[str]],
                    budget: dict[str, Any]) -> dict[str, Any]:
    """The content of ``verdicts.json`` for the benchmarks evaluated at each trained scale."""
    scales = {}
    for scale, benchmarks in sorted(benchmarks_at.items()):
        reference = reference_of(scores, benchmarks, scale)
        methods = sorted(set.intersection(*(set(scores.methods(b, scale)) for b in benchmarks))
                         - {BASELINE, reference})
        metrics = [m for m in VERDICT_METRICS if all(scores.has(b, scale, name, m) for b in benchmarks
                                                     for name in (*methods, reference))]
        objectives = {}
        for method in methods:
            deltas = {metric: pooled_delta(scores, benchmarks, scale, method, reference, metric) for metric in metrics}
            objectives[method] = {metric: asdict(delta) for metric, delta in deltas.items() if delta is not None}
        scales[f"x{scale}"] = {"reference": reference, "benchmarks": sorted(benchmarks), "objectives": objectives}
    return {"format": FORMAT, "budget": budget, "scales": scales}


def write_verdicts(path: Path, verdicts: dict[str, Any]) -> None:
    write_text(path, json.dumps(verdicts, indent=2) + "\n")


def read_verdicts(path: Path) -> dict[str, Any]:
    """A ``verdicts.json``; a missing, unreadable or foreign file is one ``PipelineError`` sentence."""
    try:
        verdicts = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise PipelineError(f"'{path}' does not exist; run the evaluate stage (`dvc repro`), which writes "
                            f"results/{VERDICTS_FILE}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PipelineError(f"'{path}' is not a readable JSON file ({exc}); run the evaluate stage again to "
                            "rewrite it") from None
    if not isinstance(verdicts, dict) or verdicts.get("format") != FORMAT or not {"budget", "scales"} <= set(verdicts):
        raise PipelineError(f"'{path}' is not a verdicts.json of format {FORMAT} (with budget and scales); "
                            "run the evaluate stage of this version to rewrite it")
    return verdicts
