"""The evaluate stage: score the sweep's models and the bicubic baseline on the benchmarks, then
write ``results/{metrics.json,scores.json,image_scores.csv,leaderboard.md,claims.md,verdicts.json}``
and ``results/plots/`` (``pipeline.report.publish``).

For every scale in ``evaluate.scales`` and every benchmark, each LR image
(``<data>/lr/<train.degradation>/x<s>/<benchmark>``) is super-resolved by MATLAB bicubic and by
every model trained at that scale (tiled: ``evaluate.tile``/``tile_overlap``), and scored against
its modcropped HR image (``pipeline.report.scoring``); ``evaluate.decodes`` scores the same models
under other decodes too (e.g. fine-grained's ``anchor``), as rows ``<objective>.<decode>`` (``decode_row``). A model is only evaluated at the scale it
was trained for. Each model's scores are kept by the MLflow run that trained it, to be logged there
as ``<benchmark>/x<s>/<metric>``. The SR time per megapixel of output (``decode_ms_per_mp``) is the wall time of
those tiled upscales (``pipeline.report.scoring.TimedUpscale``).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from pipeline.config import Params, decode_row
from pipeline.data.paired import ImagePair, load_pairs
from pipeline.degrade.imresize import imresize_uint8
from pipeline.errors import PipelineError
from pipeline.inference import SuperResolver, load_super_resolver, upscale_image
from pipeline.metrics.fid_metric import FidMetric
from pipeline.metrics.lpips_metric import LpipsMetric, Unavailable
from pipeline.report.comparison import Comparison
from pipeline.report.metrics_file import BASELINE, METRICS, ScoreTable
from pipeline.report.per_image import PerImageScores
from pipeline.report.publish import write_report
from pipeline.report.scoring import ImageScorer, TimedUpscale
from pipeline.report.sweep_outputs import TrainedObjective, find_trained_objectives, objectives_without_model
from pipeline.self_ensemble import SUFFIX as ENSEMBLE_SUFFIX
from pipeline.self_ensemble import SelfEnsemble
from pipeline.train.cpus import use_available_cpus
from pipeline.train.device import flush_subnormals, keep_freed_cpu_memory, resolve_device

log = logging.getLogger(__name__)

SuperResolve = Callable[[np.ndarray], np.ndarray]
RunScores = dict[str, dict[str, float]]  # MLflow run id -> {"<benchmark>/x<s>/<metric>": value}
COMPARED_IMAGES = 8  # the comparison crops are chosen among a benchmark's first images


@dataclass
class Results:
    """What an evaluation collects: per-model means (``table``), every image's scores, the scores of whole
    benchmarks (FID), and each model's scores filed under the MLflow run that trained it."""

    table: ScoreTable = field(default_factory=ScoreTable)
    per_image: PerImageScores = field(default_factory=PerImageScores)
    set_level: PerImageScores = field(default_factory=PerImageScores)
    run_scores: RunScores = field(default_factory=lambda: defaultdict(dict))

    def record(self, comparison: Comparison, method: str, seed: int | None, run_id: str | None,
               pairs: list[ImagePair], scores: list[dict[str, float]], **model_scores: float) -> None:
        """Keep one model's per-image scores, their means over the images, and (with ``run_id``) the
        means as ``<benchmark>/x<s>/<metric>`` for its run."""
        for pair, image_scores in zip(pairs, scores, strict=True):
            self.per_image.add(comparison.benchmark, comparison.scale, method, seed, pair.name, image_scores)
        means = {metric: float(np.mean([image[metric] for image in scores])) for metric in scores[0]}
        self.table.add(comparison.benchmark, comparison.scale, method, {**means, **model_scores})
        if run_id:
            self.run_scores[run_id].update({f"{comparison.benchmark}/x{comparison.scale}/{metric}": value
                                            for metric, value in {**means, **model_scores}.items()
                                            if metric in METRICS})


def evaluate_all(params: Params, progress: bool = False) -> dict[str, Any]:
    """Evaluate the current sweep's models (``find_trained_objectives``), write every report file, log
    them to MLflow; return a summary whose ``without_model`` names the sweep's objectives that have no
    model. ``progress`` shows a bar on stderr, one step per model (and bicubic) scored on a benchmark."""
    config = params.evaluate
    trained = find_trained_objectives(params.models_dir)
    without_model = objectives_without_model(params.models_dir, trained)
    if without_model:
        log.warning("the current sweep has no model for %s (all their trials failed); they are not evaluated",
                    ", ".join(without_model))
    scales = sorted(set(config.scales))
    _check_scales(trained, scales)
    benchmarks = benchmark_names(params)
    device = resolve_device(config.device)
    keep_freed_cpu_memory(device)
    flush_subnormals(device)
    lpips_metric, fid_metric, unavailable = perceptual_metrics(params, device)

    results = Results()
    comparisons: list[Comparison] = []
    image_counts: dict[str, int] = {}
    models = sum(len(objective.checkpoints) * (1 + len(config.decodes.get(objective.name, [])) + config.self_ensemble)
                 for objective in trained if objective.scale in scales)
    bar = tqdm(total=len(benchmarks) * (len(scales) + models), desc="evaluate", unit="model", disable=not progress)
    for scale in scales:
        here = [objective for objective in trained if objective.scale == scale]
        scorer = ImageScorer.for_scale(params.metrics, scale, lpips_metric, device, fid_metric)
        for benchmark in benchmarks:
            use_available_cpus()  # again per benchmark: another process may have started or ended meanwhile
            pairs = load_pairs(params.data_dir, params.train.degradation, scale, benchmark)
            image_counts[benchmark] = len(pairs)
            log.debug("evaluating %s x%d (%d images): bicubic and %d objective(s)", benchmark, scale, len(pairs),
                      len(here))
            shown = pairs[:COMPARED_IMAGES]
            comparison = Comparison(benchmark, scale, [pair.name for pair in shown], [pair.hr for pair in shown])
            comparisons.append(comparison)
            sets = SetScores(scorer, pairs, results.set_level, comparison)
            scores, comparison.outputs[BASELINE] = score_pairs(pairs, scorer,
                                                               lambda lr, s=scale: imresize_uint8(lr, s), sets)
            results.record(comparison, BASELINE, None, None, pairs, scores, **sets.take(BASELINE, None))
            bar.update()
            for objective in here:
                _evaluate_objective(objective, pairs, scorer, params, device, results, sets, comparison, bar)
    bar.close()

    summary = write_report(params, trained, results.table.to_tree(unavailable), results.per_image,
                           results.set_level, comparisons, image_counts, _device_name(device),
                           dict(results.run_scores))
    return {**summary, "without_model": without_model}


def perceptual_metrics(params: Params, device: torch.device) -> tuple[LpipsMetric | None, FidMetric | None,
                                                                     dict[str, str]]:
    """LPIPS and FID on ``device`` where their weights load, and ``{metric: reason}`` for those that do not."""
    lpips = LpipsMetric.load(params.metrics.lpips)
    unavailable = {"lpips": lpips.reason} if isinstance(lpips, Unavailable) else {}
    fid = FidMetric.load(params.metrics.fid)
    if isinstance(fid, Unavailable):
        unavailable["fid"] = fid.reason
    return (None if isinstance(lpips, Unavailable) else lpips.to(device),
            None if isinstance(fid, Unavailable) else fid.to(device), unavailable)


def _evaluate_objective(objective: TrainedObjective, pairs: list[ImagePair], scorer: ImageScorer, params: Params,
                        device: torch.device, results: Results, sets: SetScores, comparison: Comparison,
                        bar: tqdm) -> None:
    """Score every model of ``objective`` (per image, and one mean per model and metric, filed under the
    model's MLflow run) and keep the outputs of the seed ``best.pt`` was trained with for the comparison."""
    for seed, checkpoint in objective.checkpoints.items():
        resolver = load_super_resolver(checkpoint, device)
        upscale = TimedUpscale(_tiled(resolver, params))
        scores, outputs = score_pairs(pairs, scorer, upscale, sets)
        results.record(comparison, objective.name, seed, run_of(objective, seed), pairs, scores,
                       decode_ms_per_mp=upscale.ms_per_megapixel(), **sets.take(objective.name, seed))
        if seed == int(objective.trained_with["seed"]):
            comparison.outputs[objective.name] = outputs
        bar.update()
        if params.evaluate.self_ensemble:
            ensemble, method = SelfEnsemble(resolver), f"{objective.name}{ENSEMBLE_SUFFIX}"
            scores, _ = score_pairs(pairs, scorer, _tiled(ensemble, params), sets)
            results.record(comparison, method, seed, None, pairs, scores, **sets.take(method, seed))
            bar.update()
        for decode in params.evaluate.decodes.get(objective.name, []):
            resolver.objective.use_decode(decode)
            upscale = TimedUpscale(_tiled(resolver, params))
            scores, _ = score_pairs(pairs, scorer, upscale, sets)
            method = decode_row(objective.name, decode)
            results.record(comparison, method, seed, None, pairs, scores,
                           decode_ms_per_mp=upscale.ms_per_megapixel(), **sets.take(method, seed))
            bar.update()
    comparison.seeds[objective.name] = int(objective.trained_with["seed"])
    if objective.name not in comparison.outputs:
        _, comparison.outputs[objective.name] = score_pairs(pairs[:COMPARED_IMAGES], scorer,
                                                            _tiled(load_super_resolver(objective.best, device), params))


def run_of(objective: TrainedObjective, seed: int) -> str | None:
    """The MLflow run that trained ``objective``'s model of ``seed``, where the sweep recorded one."""
    if objective.seeds:
        return objective.seed_run_ids.get(seed)
    return objective.run_id


def _tiled(resolver: SuperResolver, params: Params) -> SuperResolve:
    config = params.evaluate
    return lambda lr: upscale_image(resolver, lr, tile=config.tile, overlap=config.tile_overlap)


class SetScores:
    """Scores of a whole benchmark (FID), fed one SR image at a time and kept in ``set_level`` under the
    image name ``all``; a no-op without FID weights."""

    def __init__(self, scorer: ImageScorer, pairs: list[ImagePair], set_level: PerImageScores,
                 comparison: Comparison) -> None:
        self.scorer, self.set_level, self.comparison = scorer, set_level, comparison
        self.hr_features = np.concatenate([scorer.fid_features(pair.hr) for pair in pairs]) if scorer.fid else None
        self.sr_features: list[np.ndarray] = []

    def add(self, sr: np.ndarray) -> None:
        if self.hr_features is not None:
            self.sr_features.append(self.scorer.fid_features(sr))

    def take(self, method: str, seed: int | None) -> dict[str, float]:
        """The set scores of the images added since the last call, recorded for ``method`` and ``seed``."""
        if self.hr_features is None:
            return {}
        scores = {"fid": FidMetric.distance(np.concatenate(self.sr_features), self.hr_features)}
        self.sr_features = []
        self.set_level.add(self.comparison.benchmark, self.comparison.scale, method, seed, "all", scores)
        return scores


def score_pairs(pairs: list[ImagePair], scorer: ImageScorer, super_resolve: SuperResolve,
                sets: SetScores | None = None) -> tuple[list[dict[str, float]], list[np.ndarray]]:
    """Each pair's scores (and, into ``sets``, its set-score features), and the outputs of the first
    ``COMPARED_IMAGES`` pairs (for the comparison crops; all outputs would not fit in memory on large sets)."""
    per_image: list[dict[str, float]] = []
    outputs: list[np.ndarray] = []
    for pair in pairs:
        sr = super_resolve(pair.lr)
        per_image.append(scorer(sr, pair.hr))
        if len(outputs) < COMPARED_IMAGES:
            outputs.append(sr)
        if sets is not None:
            sets.add(sr)
    return per_image, outputs


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