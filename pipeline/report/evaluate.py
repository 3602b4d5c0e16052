"""The evaluate stage: score the sweep's models and the bicubic baseline on the benchmarks, then
write ``results/metrics.json``, ``results/scores.json``, ``results/leaderboard.md`` and ``results/plots/``.

For every scale in ``evaluate.scales`` and every benchmark, each LR image
(``<data>/lr/<train.degradation>/x<s>/<benchmark>``) is super-resolved by MATLAB bicubic and by
every model trained at that scale (tiled: ``evaluate.tile``/``tile_overlap``), and scored against
its modcropped HR image (``pipeline.report.scoring``). A model is only evaluated at the scale it
was trained for. Each model's scores are kept by the MLflow run that trained it, to be logged there
as ``<benchmark>/x<s>/<metric>``. Decode time per megapixel is measured on a window of each benchmark's first image
(``pipeline.report.scoring.decode_ms_per_megapixel``).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from pipeline.config import Params
from pipeline.data.paired import ImagePair, load_pairs
from pipeline.degrade.imresize import imresize_uint8
from pipeline.errors import PipelineError
from pipeline.inference import SuperResolver, load_super_resolver, upscale_image
from pipeline.metrics.lpips_metric import LpipsMetric, Unavailable
from pipeline.report.comparison import Comparison
from pipeline.report.metrics_file import BASELINE, ScoreTable
from pipeline.report.publish import write_report
from pipeline.report.scoring import ImageScorer, decode_ms_per_megapixel
from pipeline.report.sweep_outputs import TrainedObjective, find_trained_objectives
from pipeline.train.device import keep_freed_cpu_memory, resolve_device

log = logging.getLogger(__name__)

SuperResolve = Callable[[np.ndarray], np.ndarray]
RunScores = dict[str, dict[str, float]]  # MLflow run id -> {"<benchmark>/x<s>/<metric>": value}


def evaluate_all(params: Params, progress: bool = False) -> dict[str, Any]:
    """Evaluate, write every report file, log them to the sweep's MLflow parent run; return a summary.
    ``progress`` shows a bar on stderr, one step per model (and bicubic) scored on a benchmark."""
    config = params.evaluate
    trained = find_trained_objectives(params.models_dir)
    scales = sorted(set(config.scales))
    _check_scales(trained, scales)
    benchmarks = benchmark_names(params)
    device = resolve_device(config.device)
    keep_freed_cpu_memory(device)
    lpips = LpipsMetric.load(params.metrics.lpips)
    unavailable = {"lpips": lpips.reason} if isinstance(lpips, Unavailable) else {}
    lpips_metric = None if isinstance(lpips, Unavailable) else lpips.to(device)

    table = ScoreTable()
    run_scores: RunScores = defaultdict(dict)
    comparisons: list[Comparison] = []
    image_counts: dict[str, int] = {}
    models = sum(len(objective.checkpoints) for objective in trained if objective.scale in scales)
    bar = tqdm(total=len(benchmarks) * (len(scales) + models), desc="evaluate", unit="model", disable=not progress)
    for scale in scales:
        here = [objective for objective in trained if objective.scale == scale]
        scorer = ImageScorer.for_scale(params.metrics, scale, lpips_metric, device)
        for benchmark in benchmarks:
            pairs = load_pairs(params.data_dir, params.train.degradation, scale, benchmark)
            image_counts[benchmark] = len(pairs)
            log.debug("evaluating %s x%d (%d images): bicubic and %d objective(s)", benchmark, scale, len(pairs),
                     len(here))
            comparison = Comparison(benchmark, scale, pairs[0].name, pairs[0].hr)
            comparisons.append(comparison)
            scores, comparison.outputs[BASELINE] = _score(pairs, scorer, lambda lr, s=scale: imresize_uint8(lr, s))
            table.add(benchmark, scale, BASELINE, scores)
            bar.update()
            for objective in here:
                _evaluate_objective(objective, pairs, scorer, params, device, table, comparison, run_scores, bar)
    bar.close()

    return write_report(params, trained, table.to_tree(unavailable), comparisons, image_counts, _device_name(device),
                        dict(run_scores))


def _evaluate_objective(objective: TrainedObjective, pairs: list[ImagePair], scorer: ImageScorer, params: Params,
                        device: torch.device, table: ScoreTable, comparison: Comparison, run_scores: RunScores,
                        bar: tqdm) -> None:
    """Score every model of ``objective`` (one value per model and metric), file the scores under the
    model's MLflow run, and keep ``best.pt``'s output of the first image for the comparison."""
    runs = checkpoint_runs(objective)
    for checkpoint in objective.checkpoints:
        resolver = load_super_resolver(checkpoint, device)
        scores, first = _score(pairs, scorer, _tiled(resolver, params))
        scores["decode_ms_per_mp"] = decode_ms_per_megapixel(resolver, pairs[0].lr)
        table.add(comparison.benchmark, comparison.scale, objective.name, scores)
        if checkpoint in runs:
            run_scores[runs[checkpoint]].update({f"{comparison.benchmark}/x{comparison.scale}/{metric}": value
                                                 for metric, value in scores.items()})
        if checkpoint == objective.best:
            comparison.outputs[objective.name] = first
        bar.update()
    comparison.seeds[objective.name] = int(objective.trained_with["seed"])
    if objective.name not in comparison.outputs:
        _, comparison.outputs[objective.name] = _score(pairs[:1], scorer,
                                                       _tiled(load_super_resolver(objective.best, device), params))


def checkpoint_runs(objective: TrainedObjective) -> dict[Path, str]:
    """Each of ``objective.checkpoints`` -> the MLflow run that trained it, where the sweep recorded one."""
    by_seed = objective.seed_run_ids
    if objective.seeds:
        return {path: by_seed[seed] for seed, path in objective.seeds.items() if seed in by_seed}
    return {objective.best: objective.run_id} if objective.run_id else {}


def _tiled(resolver: SuperResolver, params: Params) -> SuperResolve:
    config = params.evaluate
    return lambda lr: upscale_image(resolver, lr, tile=config.tile, overlap=config.tile_overlap)


def _score(pairs: list[ImagePair], scorer: ImageScorer,
           super_resolve: SuperResolve) -> tuple[dict[str, float], tuple[np.ndarray, float]]:
    """Scores averaged over ``pairs``, and the first image's output with its PSNR."""
    per_image: list[dict[str, float]] = []
    first: tuple[np.ndarray, float] | None = None
    for pair in pairs:
        sr = super_resolve(pair.lr)
        per_image.append(scorer(sr, pair.hr))
        if first is None:
            first = (sr, per_image[0]["psnr"])
    return {metric: float(np.mean([scores[metric] for scores in per_image])) for metric in per_image[0]}, first


def benchmark_names(params: Params) -> list[str]:
    """``evaluate.benchmarks``, or every folder under ``<data>/benchmarks``; each must exist."""
    root = Path(params.data_dir) / "benchmarks"
    names = params.evaluate.benchmarks
    if names is None:
        names = sorted(path.name for path in root.iterdir() if path.is_dir()) if root.is_dir() else []
        if not names:
            raise PipelineError(f"no benchmark folders in '{root}'; declare some under prepare.benchmarks and "
                                "re-run the prepare and degrade stages")
    for name in names:
        if not (root / name).is_dir():
            raise PipelineError(f"evaluate.benchmarks names '{name}' but '{root / name}' does not exist; add it to "
                                "prepare.benchmarks and re-run prepare and degrade, or remove it from "
                                "evaluate.benchmarks")
    return list(names)


def _check_scales(trained: list[TrainedObjective], scales: list[int]) -> None:
    trained_at = sorted({objective.scale for objective in trained})
    if not set(trained_at) & set(scales):
        raise PipelineError(f"evaluate.scales {scales} holds no scale the models were trained at ({trained_at}); "
                            f"add {trained_at[0]} to evaluate.scales")
    for objective in trained:
        if objective.scale not in scales:
            log.warning("objective '%s' was trained at x%d, which is not in evaluate.scales %s; it is left out",
                        objective.name, objective.scale, scales)


def _device_name(device: torch.device) -> str:
    return torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"