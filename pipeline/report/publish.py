"""Writing an evaluation's results: ``metrics.json`` and ``scores.json`` (``pipeline.report.metrics_file``),
``image_scores.csv`` (every image's scores, ``pipeline.report.per_image``), ``summary.md`` (the answer
across benchmarks, ``pipeline.report.front``; also the first section of ``leaderboard.md``), ``leaderboard.md``,
``claims.md``, ``verdicts.json`` (the pooled verdicts and the budget protocol, ``pipeline.report.verdicts_file``),
``plots/``; in MLflow, each model's benchmark scores on the run that trained it (``Set5/x2/psnr``), and
the report files, the per-objective means (``Set5/x2/l1/psnr``, as in ``metrics.json``) and the summary as
its description on the sweep's parent run.

``plots/`` holds only PNGs (``dvc plots show`` renders images offline; its charts of tables load their
renderer from a CDN) and is rebuilt from scratch on every run, so no plot of a removed benchmark
survives: ``psnr_x<s>.png`` (gains over bicubic), ``psnr_vs_l1_x<s>.png`` (gains over L1, when it was
trained), ``perception_distortion_<benchmark>_x<s>.png`` (only with LPIPS), ``comparison_<benchmark>_x<s>.png``,
``validation_psnr.png`` (one line per objective) and ``curves_<objective>.png``. The curves' numbers
are in ``curves.csv`` beside ``plots/``.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from pipeline.config import CODE_ROOT, Params
from pipeline.imageio import list_images
from pipeline.report.claims import render_claims
from pipeline.report.comparison import Comparison
from pipeline.report.convergence import convergence
from pipeline.report.curves import CurvePoint, plot_training_curves, plot_validation_curves, write_curves_csv
from pipeline.report.evidence import versus
from pipeline.report.figures import file_stem
from pipeline.report.front import row_labels, summary_lines, what_ran
from pipeline.report.leaderboard import render_leaderboard, unavailable_reasons
from pipeline.report.metrics_file import BASELINE, flat_metrics, write_metrics, write_text
from pipeline.report.per_image import PerImageScores
from pipeline.report.plots import has_perceptual_metric, perception_distortion_plot, psnr_gain_bars
from pipeline.report.run_store import LOCAL_UI, RunStore, experiment_link, portable_uri, store_kind
from pipeline.report.spectral_plot import spectral_ratio_plot
from pipeline.report.statement import study_statement
from pipeline.report.sweep_outputs import TrainedObjective
from pipeline.report.training_cost import TrainingCost, budget_line, budget_record, training_costs
from pipeline.report.verdicts_file import VERDICTS_FILE, pooled_verdicts, write_verdicts
from pipeline.self_ensemble import NOTE as SELF_ENSEMBLE_NOTE
from pipeline.tracking.store import artifact_root, is_remote, tracking_uri
from pipeline.tracking.tags import git_tags

log = logging.getLogger(__name__)

ARTIFACT_PATH = "evaluate"
STAGING_PREFIX = ".evaluate-new-"
L1 = "l1"  # the sweep objective the losses under study are usually compared with
CI = "paired 95% bootstrap interval (images x seeds)"


def write_report(params: Params, trained: list[TrainedObjective], tree: dict[str, Any], scores: PerImageScores,
                 set_scores: PerImageScores, comparisons: list[Comparison], image_counts: dict[str, int],
                 device: str, run_scores: dict[str, dict[str, float]] | None = None) -> dict[str, Any]:
    """Write every result file, log them to MLflow when tracking is enabled, and return a summary.

    ``scores`` holds every image's scores and ``set_scores`` those of whole benchmarks (FID), for the
    paired verdicts; ``run_scores`` maps an MLflow run id to the benchmark scores of the model it trained.
    The files are written into a staging folder in ``results_dir`` and moved into place only once all
    are written, so a failure leaves the previous report whole (dvc.yaml marks them ``persist``, so DVC
    does not delete them before the stage runs either)."""
    results_dir = Path(params.results_dir)
    results_dir.mkdir(parents=True, exist_ok=True)
    for stale in results_dir.glob(f"{STAGING_PREFIX}*"):  # left by a killed evaluate
        shutil.rmtree(stale, ignore_errors=True)
    store = RunStore(tracking_uri(params)) if params.tracking.enabled else None
    if store is not None and not store.usable:
        log.warning("the report cannot use MLflow: %s", store.problem)
    evaluated = [objective for objective in trained if objective.scale in params.evaluate.scales]
    staging = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=results_dir))
    try:
        files, plots, curves_problem, description = _write_files(params, staging, evaluated, tree, scores, set_scores,
                                                                 comparisons, image_counts, device, store)
        _swap_in(staging, results_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    files = [results_dir / path.relative_to(staging) for path in files]
    plots = [results_dir / path.relative_to(staging) for path in plots]
    logged = _log_to_parent_runs(store, evaluated, files, plots, flat_metrics(tree), description)
    if store is not None and store.usable:
        for run_id, model_scores in (run_scores or {}).items():
            store.log_metrics(run_id, model_scores, to_models=True)
    (metrics_path, scores_path, image_scores_path, summary_path, leaderboard_path, claims_path, curves_csv,
     verdicts_path) = files
    return {"metrics": str(metrics_path), "scores": str(scores_path), "image_scores": str(image_scores_path),
            "claims": str(claims_path), "curves": str(curves_csv), "leaderboard": str(leaderboard_path),
            "summary": str(summary_path), "verdicts": str(verdicts_path),
            "plots": sorted(map(str, plots)),
            "objectives": [o.name for o in evaluated], "benchmarks": list(tree),
            "psnr": {benchmark: {scale: {name: entry["psnr"]["mean"] for name, entry in objectives.items()}
                                 for scale, objectives in scales.items()} for benchmark, scales in tree.items()},
            "training_curves": curves_problem or "written", "mlflow_parent_runs": logged}


def _write_files(params: Params, out: Path, evaluated: list[TrainedObjective], tree: dict[str, Any],
                 scores: PerImageScores, set_scores: PerImageScores, comparisons: list[Comparison],
                 image_counts: dict[str, int], device: str,
                 store: RunStore | None) -> tuple[list[Path], list[Path], str | None, str]:
    """Write the report into ``out``: the eight files (metrics, scores, image scores, summary, leaderboard,
    claims, curves, verdicts), the plots; returns them, why training curves are missing (None when none are)
    and the summary's text (the parent runs' description)."""
    plots_dir = out / "plots"
    plots_dir.mkdir()
    metrics_path, scores_path = out / "metrics.json", out / "scores.json"
    write_metrics(scores_path, tree)
    write_metrics(metrics_path, flat_metrics(tree))
    image_scores_path = out / "image_scores.csv"
    scores.write_csv(image_scores_path)
    plots = result_plots(tree, scores, plots_dir)
    for comparison in comparisons:
        stem = file_stem("comparison", comparison.benchmark, f"x{comparison.scale}")
        plots.append(comparison.save(params.evaluate.crop_size, plots_dir / f"{stem}.png"))
    curves_problem, curve_files, curves_csv, points = training_curves(evaluated, store, plots_dir)
    plots += curve_files

    trained_scales = {objective.scale for objective in evaluated}
    evaluated_sets = [(benchmark, int(scale.removeprefix("x"))) for benchmark, scales in tree.items()
                      for scale in scales if int(scale.removeprefix("x")) in trained_scales]
    benchmarks_at: dict[int, list[str]] = {}
    for benchmark, scale in evaluated_sets:
        benchmarks_at.setdefault(scale, []).append(benchmark)
    labels = row_labels(evaluated, {method for benchmark, scale in evaluated_sets
                                    for method in scores.methods(benchmark, scale)})
    converged = convergence(points)
    summary = summary_lines(scores, benchmarks_at, labels, converged)
    summary_path = out / "summary.md"
    description = "\n".join([*summary, "", provenance()]) + "\n"
    write_text(summary_path, description)
    leaderboard_path = out / "leaderboard.md"
    write_text(leaderboard_path, _leaderboard(params, evaluated, tree, scores, store, curves_problem, image_counts,
                                              device, [*summary, "", *what_ran(evaluated)], labels,
                                              training_costs(evaluated)))
    claims_path = out / "claims.md"
    write_text(claims_path, render_claims(scores, set_scores, evaluated_sets, unavailable_reasons(tree),
                                          provenance(), converged, budget_line(evaluated)) + "\n")
    verdicts_path = out / VERDICTS_FILE
    write_verdicts(verdicts_path, pooled_verdicts(scores, benchmarks_at, budget_record(evaluated)))
    files = [metrics_path, scores_path, image_scores_path, summary_path, leaderboard_path, claims_path, curves_csv,
             verdicts_path]
    return files, plots, curves_problem, description


def _swap_in(staging: Path, results_dir: Path) -> None:
    """Move every staged file over its old version (``os.replace``) and the staged ``plots/`` in place of
    the old one, so no plot of a removed benchmark survives."""
    retired = staging / ".retired"
    for path in sorted(staging.iterdir()):
        if path.name == "plots":
            if (results_dir / "plots").is_dir():
                os.replace(results_dir / "plots", retired)
            os.replace(path, results_dir / "plots")
        elif path.is_file():
            os.replace(path, results_dir / path.name)


def provenance() -> str:
    """``Generated on <UTC time> from commit <hash>`` (``, with uncommitted changes`` when dirty)."""
    tags = git_tags(CODE_ROOT)
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    if not tags:
        return f"Generated on {when}, outside a git checkout."
    dirty = ", with uncommitted changes" if tags["git.dirty"] == "true" else ""
    return f"Generated on {when} from commit `{tags['mlflow.source.git.commit'][:12]}`{dirty}."


def _leaderboard(params: Params, evaluated: list[TrainedObjective], tree: dict[str, Any], scores: PerImageScores,
                 store: RunStore | None, curves_problem: str | None, image_counts: dict[str, int],
                 device: str, front: list[str], labels: dict[str, str], costs: dict[str, TrainingCost]) -> str:
    links = {objective.name: _run_cell(store, objective) for objective in evaluated
             if store is not None and (objective.run_id or objective.seed_run_ids)}
    train_images = _count_images(Path(params.data_dir) / "hr" / "train")
    experiments = sorted({objective.experiment_id for objective in evaluated if objective.experiment_id})
    notes = [_tracking_note(params, store, experiments[0] if experiments else None)]
    if curves_problem:
        notes.append(f"Training curves are missing: {curves_problem}")
    if params.evaluate.self_ensemble:
        notes.append(SELF_ENSEMBLE_NOTE)
    statement = study_statement(evaluated, params, image_counts, train_images, device)
    return render_leaderboard(tree, scores, front, statement, links, notes,
                              {objective.name: objective.scale for objective in evaluated}, labels, costs)


def _run_cell(store: RunStore, objective: TrainedObjective) -> str:
    """The run behind ``best.pt``, or every seed's run (``seed 1: ...``) when there are several."""
    runs = objective.seed_run_ids
    if len(runs) > 1:
        return ", ".join(f"seed {seed}: {store.link(run, objective.experiment_id)}"
                         for seed, run in sorted(runs.items()))
    return store.link(objective.run_id or next(iter(runs.values())), objective.experiment_id)


def _log_to_parent_runs(store: RunStore | None, evaluated: list[TrainedObjective], files: list[Path],
                        plots: list[Path], summary: dict[str, float], description: str) -> list[str]:
    """Upload the report, log ``summary`` (the metrics.json columns) and set ``description`` (the answer
    across benchmarks) on each sweep parent run named in the models' info.json; the runs that got them."""
    if store is None or not store.usable:
        return []
    parents = sorted({objective.parent_run_id for objective in evaluated if objective.parent_run_id})
    if not parents:
        log.warning("the models' info.json name no MLflow parent run; the report is not logged to MLflow")
    return [run for run in parents
            if store.log_files(run, files, ARTIFACT_PATH) and store.log_files(run, plots, f"{ARTIFACT_PATH}/plots")
            and store.log_metrics(run, summary) and store.describe(run, description)]


def result_plots(tree: dict[str, Any], scores: PerImageScores, plots_dir: Path) -> list[Path]:
    """Per scale, PSNR gains over bicubic and over L1 (when trained) with their paired 95% intervals;
    per benchmark and scale, the perception-distortion plane where LPIPS was measured and the spectral
    ratios (``pipeline.report.spectral_plot``)."""
    written = []
    by_scale: dict[str, dict[str, dict[str, Any]]] = {}
    for benchmark, scales in tree.items():
        for scale, objectives in scales.items():
            if has_perceptual_metric(objectives):
                written.append(perception_distortion_plot(
                    objectives, f"{benchmark} {scale}: perception-distortion plane",
                    plots_dir / f"{file_stem('perception_distortion', benchmark, scale)}.png"))
            by_scale.setdefault(scale, {})[benchmark] = objectives
            spectral = spectral_ratio_plot(scores, benchmark, int(scale.removeprefix("x")),
                                           plots_dir / f"{file_stem('spectrum', benchmark, scale)}.png")
            written += [spectral] if spectral else []
    for scale, benchmarks in by_scale.items():
        if any(len(objectives) > 1 for objectives in benchmarks.values()):
            written.append(psnr_gain_bars(benchmarks, f"PSNR gain over bicubic at {scale}",
                                          plots_dir / f"{file_stem('psnr', scale)}.png",
                                          errors=_intervals(scores, benchmarks, scale, BASELINE), error_label=CI))
        with_l1 = {name: objectives for name, objectives in benchmarks.items() if L1 in objectives}
        if any(len(objectives) > 2 for objectives in with_l1.values()):
            written.append(psnr_gain_bars(with_l1, f"PSNR gain over {L1} at {scale}",
                                          plots_dir / f"{file_stem('psnr_vs', L1, scale)}.png", reference=L1,
                                          errors=_intervals(scores, with_l1, scale, L1), error_label=CI))
    return written


def _intervals(scores: PerImageScores, benchmarks: dict[str, dict[str, Any]], scale: str,
               reference: str) -> dict[tuple[str, str], tuple[float, float]]:
    """``(benchmark, objective)`` -> the paired 95% interval of its PSNR gain over ``reference``."""
    intervals = {}
    for benchmark, objectives in benchmarks.items():
        for name in objectives:
            delta = versus(scores, benchmark, int(scale.removeprefix("x")), name, reference)
            if delta is not None:
                intervals[benchmark, name] = (delta.low, delta.high)
    return intervals


def training_curves(trained: list[TrainedObjective], store: RunStore | None,
                    plots_dir: Path) -> tuple[str | None, list[Path], Path, list[CurvePoint]]:
    """A PNG per objective with a logged history (every seed's run) and ``validation_psnr.png`` in
    ``plots_dir``, and ``curves.csv`` beside it (always, possibly header-only), from the MLflow runs that
    trained the models; returns why curves are missing (None when none are), the PNGs, the CSV and the points."""
    if store is None:
        problem = "tracking was disabled (tracking.enabled false), so no training history was recorded"
    elif not store.usable:
        problem = store.problem
    else:
        problem = None
    points: list[CurvePoint] = []
    missing = []
    files = []
    for objective in trained if problem is None else []:
        runs = objective.seed_run_ids or ({int(objective.trained_with["seed"]): objective.run_id}
                                          if objective.run_id else {})
        mine = [CurvePoint(objective.name, seed, step, metric, value) for seed, run in sorted(runs.items())
                for metric, step, value in store.history(run)]
        if not mine:
            missing.append(objective.name)
            continue
        points += mine
        path = plots_dir / f"{file_stem('curves', objective.name)}.png"
        files.append(plot_training_curves(objective.name, mine, path))
    if points:
        files.append(plot_validation_curves(points, plots_dir / "validation_psnr.png"))
    csv_path = write_curves_csv(points, plots_dir.parent / "curves.csv")
    if missing:
        problem = f"no MLflow metric history for {', '.join(missing)} (no run id in info.json, or nothing logged)"
    return problem, files, csv_path, points


def _tracking_note(params: Params, store: RunStore | None, experiment_id: str | None) -> str:
    if store is None:
        return "Tracking was disabled (tracking.enabled false): the rows link to no MLflow run."
    if not store.usable:
        return f"MLflow could not be used while evaluating: {store.problem}"
    experiment = f"experiment `{params.tracking.experiment}`"
    shown = portable_uri(store.uri, artifact_root(params).parent)  # the project folder: mlflow.db's by default
    if shown is None:  # a path on one machine, or credentials: the report names neither
        return (f"MLflow runs are in a {store_kind(store.uri)} store outside the project (tracking.uri or "
                f"$MLFLOW_TRACKING_URI), {experiment}; open them with `mlflow ui --backend-store-uri <that URI>`; "
                "each row names its run.")
    where = "" if is_remote(shown) else " in the project folder"
    view = "" if experiment_id is None else (
        f", then {experiment_link(shown if is_remote(shown) else LOCAL_UI, experiment_id)} (the model-training view)")
    return (f"MLflow runs are in {shown}, {experiment}; open them with `mlflow ui --backend-store-uri {shown}`"
            f"{where}{view}; each row names its run.")


def _count_images(folder: Path) -> int | None:
    return len(list_images(folder)) if folder.is_dir() else None
