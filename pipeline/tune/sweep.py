"""``run_sweep``: the sweep stage. One Ray Tune run compares every objective in ``params.sweep``.

Steps: check the space against the schema and the storage and tracking settings (before Ray
starts, so mistakes cost seconds); join or start Ray (``pipeline.tune.cluster``); open the MLflow
parent run; run one Tuner whose trials span all objectives and seeds (random or grid search with
Tune's ``BasicVariantGenerator``, or Optuna TPE; FIFO, ASHA or PBT scheduling on the
``validations`` count); then write ``trials.csv``, ``best.yaml`` and ``models/<objective>/``
(``pipeline.tune.outputs``) and settle the MLflow runs.

The sweep folder is ``<sweep.storage_path>/<sweep.name>`` (a folder or an object store, through
``pipeline.tune.storage``); a new sweep replaces it, only when a sweep made it (``pipeline.tune.sweep_folder``).
With an object store the nodes need share no disk: the training data is published to
``<sweep.storage_path>/data`` (``pipeline.tune.shared_data``). ``resume`` continues it with
``Tuner.restore``: finished trials are kept, unfinished and errored ones go on from their last
checkpoint, and the MLflow parent run (its id is kept in the folder's ``srloss_sweep.json``) and child
runs are continued, not duplicated. Each new sweep gets a random id (kept there too, so a resumed
sweep keeps it) that its exported models carry (``pipeline.tune.outputs``).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from pipeline.config import Params, SweepConfig
from pipeline.errors import ConfigError
from pipeline.redact import redact_uri
from pipeline.tracking.store import artifact_root, check_tracking, ensure_experiment, is_remote, tracking_uri
from pipeline.tune.cluster import cluster_address, ray_cluster
from pipeline.interrupt import Interrupted, StopSignals
from pipeline.tune.ddp import run_ddp_trial
from pipeline.tune.interruption import ForwardStop, kill_running_children
from pipeline.tune.outputs import best_configurations, export_models, write_best_yaml, write_trials_csv
from pipeline.tune.parent_run import ParentRun, describe_algorithms
from pipeline.tune.log_file import log_to_file
from pipeline.tune.progress import SweepProgress
from pipeline.tune.results import (FAILED, STOPPED, Selection, TrialRecord, require_some_success, select_best,
                                   trial_record)
from pipeline.tune.shared_data import publish_data, training_folders
from pipeline.tune.space import SearchSpace, trial_choice
from pipeline.tune.storage import Storage, open_storage
from pipeline.tune.sweep_folder import prepare_sweep_folder, resume_wanted, write_state
from pipeline.tune.sweep_lock import sweep_lock
from pipeline.tune.trial import SweepRun, run_trial

log = logging.getLogger(__name__)

LOG_FILE = "sweep.log"
DDP_DRIVER_MEMORY = 2**28  # bytes reserved by a data-parallel trial's own process; its workers hold the CPUs/GPUs


def run_sweep(params: Params, resume: bool | str = False, signals: StopSignals | None = None) -> dict[str, Any]:
    """Run the sweep declared in ``params.sweep``; returns a summary. ``resume``: True (or ``always``)
    continues the sweep in its folder, ``auto`` continues it when it is unfinished and has the same
    ``params.sweep`` (else starts anew). ``signals`` (``pipeline.interrupt``) stop it resumably.

    The console shows one line per trial event (``pipeline.tune.progress``); the driver's full log is
    ``<results_dir>/sweep/sweep.log`` and each trial's ``<results_dir>/sweep/logs/<trial>.log``."""
    console = log.isEnabledFor(logging.INFO)  # asked before the log file lowers the level; `-q` silences the view
    with sweep_lock(Path(params.results_dir)), log_to_file(Path(params.results_dir) / "sweep" / LOG_FILE) as path:
        log.info("sweep log: %s", path)
        return _run_sweep(params, resume, console, signals)


def _run_sweep(params: Params, resume: bool | str, console: bool, signals: StopSignals | None) -> dict[str, Any]:
    started = time.perf_counter()
    config = params.sweep
    space = SearchSpace(config)
    max_validations = space.check_against(params)
    _check_scheduling(config)
    repeated = space.repeated_identically(config.num_samples)
    if repeated:
        log.warning("sweep.num_samples=%d trains %s %d times each with identical settings and seeds (none of "
                    "their keys is sampled in sweep.space); use sweep.seeds for repeats, or sample keys in "
                    "sweep.space", config.num_samples, ", ".join(repeated), config.num_samples)
    address = cluster_address(config.ray)
    storage = open_storage(config.storage_path, config.storage_endpoint, address)
    folder = storage.child(config.name)
    base = params.model_copy(deep=True)
    base.tracking.uri = tracking_uri(params) if params.tracking.enabled else params.tracking.uri
    experiment_id = None
    if base.tracking.enabled:
        check_tracking(base.tracking.uri)
        experiment_id = ensure_experiment(base.tracking.uri, base.tracking.experiment, artifact_root(base))
    resume = resume_wanted(folder, resume, params.digest("sweep"))
    state = prepare_sweep_folder(folder, resume)
    published = None
    if storage.remote:  # nodes may share no disk: the trials read the data from the storage
        trains = [params.train for params in space.representative_params(base)]
        published = publish_data(base.data_dir, training_folders(base.data_dir, trains), storage.child("data"))

    parent = None
    try:
        with ray_cluster(config.ray) as joined:
            if signals is not None:
                signals.install()  # again: ray.init puts in a SIGTERM handler of its own
            _warn_about_local_tracking(base, experiment_id)
            parent = _parent_run(base, experiment_id, space, state) if experiment_id is not None else None
            log.info("sweep '%s' on Ray (%s): %s; results in %s", config.name, joined, json.dumps(space.describe()),
                     folder.location)
            summary = _tune(base, space, folder, storage, parent, experiment_id, state, published, max_validations,
                            resume, console, signals)
    except Interrupted:
        if parent is not None:  # Ray is shut down: no stopped trial writes to its run any more
            kill_running_children(parent.uri, parent.experiment_id, parent.run_id)
        raise
    summary.update(name=config.name, folder=folder.location, resumed=resume,
                   wall_seconds=round(time.perf_counter() - started, 1))
    _log_table(summary)
    return summary


def _tune(base: Params, space: SearchSpace, folder: Storage, storage: Storage, parent: ParentRun | None,
          experiment_id: str | None, state: dict[str, Any], published: Any, max_validations: int, resume: bool,
          console: bool, signals: StopSignals | None) -> dict[str, Any]:
    """Run the trials, write the outputs and settle the MLflow runs; the sweep's summary."""
    config = base.sweep
    sweep_id = state.get("sweep_id") or uuid.uuid4().hex[:12]  # a resumed sweep keeps its id
    saved = {"parent_run_id": parent.run_id if parent else None, "experiment_id": experiment_id,
             "tracking_uri": redact_uri(base.tracking.uri or ""), "sweep_digest": base.digest("sweep"),
             "sweep_id": sweep_id}
    write_state(folder, saved)
    sweep = SweepRun(base, space, folder, parent.run_id if parent else None, experiment_id, published)
    try:
        with contextlib.redirect_stdout(sys.stderr):  # Tune prints progress; stdout is the CLI's summary
            grid = _tuner(sweep, storage, max_validations, resume, console).fit()
        if signals is not None:
            signals.forward = None
            finished = sum(bool(result.metrics.get("done")) for result in grid)
            signals.check(f"with {finished} of {len(grid)} trials of sweep '{config.name}' finished")
        records = [trial_record(result, config.metric, config.mode, folder.filesystem) for result in grid]
        if parent is not None:
            parent.settle_trials(records, config.name, base.seed)
        summary = _write_outputs(base, space, records, parent, experiment_id, {"name": config.name, "id": sweep_id})
    except BaseException as error:
        if parent is not None:
            parent.fail(error)
        raise
    write_state(folder, {**saved, "finished": True})
    return summary


def _warn_about_local_tracking(base: Params, experiment_id: str | None) -> None:
    """Trials on other nodes can write neither into this machine's SQLite file nor into an artifact
    folder that the server names as a path (each node would write to its own disk)."""
    import mlflow
    import ray

    nodes = sum(node["Alive"] for node in ray.nodes())
    if experiment_id is None or nodes < 2:
        return
    if not is_remote(base.tracking.uri):
        log.warning("the Ray cluster has %d nodes but MLflow tracks to %s: trials on other nodes write to their own "
                    "copy; run `mlflow server` and set tracking.uri=http://<host>:5000", nodes, base.tracking.uri)
        return
    location = mlflow.MlflowClient(base.tracking.uri).get_experiment(experiment_id).artifact_location
    if urlparse(location).scheme in ("", "file"):
        log.warning("MLflow experiment '%s' keeps its artifacts in the folder %s, so trials on the cluster's other "
                    "nodes write image strips and models to their own disks; start the server with "
                    "`--artifacts-destination s3://<bucket>/mlartifacts` (proxied artifacts) and use a new "
                    "tracking.experiment", base.tracking.experiment, location)


def _check_scheduling(config: SweepConfig) -> None:
    if config.scheduler.name == "pbt":
        if config.resources.workers > 1:
            raise ConfigError("sweep.scheduler pbt needs sweep.resources.workers 1 (it moves Tune checkpoints between "
                              "trials, which data-parallel trials keep in Ray Train); use asha or fifo")
        if config.search == "optuna":
            raise ConfigError("sweep.scheduler pbt chooses its own values; use search random or grid with it")


def _parent_run(base: Params, experiment_id: str, space: SearchSpace, state: dict[str, Any]) -> ParentRun:
    """The resumed sweep's parent run when it is in the same store, else a new one."""
    config = base.sweep
    if state.get("sweep_digest") not in (None, base.digest("sweep")):
        log.warning("params.sweep changed since the sweep began; the resumed sweep keeps its original trials and "
                    "search state")
    if state.get("parent_run_id") and state.get("tracking_uri") == redact_uri(base.tracking.uri or "") \
            and state.get("experiment_id") == experiment_id:
        parent = ParentRun(base.tracking.uri, experiment_id, state["parent_run_id"])
        parent.reopen()
        log.info("continuing the sweep's MLflow parent run %s", parent.run_id)
        return parent
    return ParentRun.start(base, experiment_id, space, describe_algorithms(config.search, config.scheduler.name))


def _tuner(sweep: SweepRun, storage: Storage, max_validations: int, resume: bool, console: bool) -> Any:
    import ray
    from ray import tune

    config = sweep.base.sweep
    resources = config.resources
    if resources.workers > 1:
        trainable = tune.with_resources(tune.with_parameters(run_ddp_trial, sweep=sweep),
                                        {"cpu": 0, "memory": DDP_DRIVER_MEMORY})
    else:
        trainable = tune.with_resources(tune.with_parameters(run_trial, sweep=sweep),
                                        {"cpu": resources.cpu, "gpu": resources.gpu})
    # Tune warns whenever it snapshots its state soon after the last time, which short trials always do;
    # its new output engine prints a configuration box and TensorBoard advice even at verbose=0
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    if resume:
        return tune.Tuner.restore(sweep.folder.path, trainable, resume_unfinished=True, resume_errored=True,
                                  storage_filesystem=sweep.folder.filesystem)
    max_concurrent = config.max_concurrent
    if max_concurrent is None and resources.workers > 1:  # the trials themselves hold no CPUs: bound them here
        cluster = ray.cluster_resources()
        fits = [cluster.get("CPU", 0) // (resources.cpu * resources.workers)]
        if resources.gpu:
            fits.append(cluster.get("GPU", 0) // (resources.gpu * resources.workers))
        max_concurrent = max(1, int(min(fits)))
    costs = sweep.space.costs(sweep.base)
    search_alg, param_space, samples = _search(sweep.space, config, sweep.base.seed, max_concurrent, costs)
    tune_config = tune.TuneConfig(metric=config.metric, mode=config.mode, search_alg=search_alg,
                                  scheduler=_scheduler(sweep.space, config, max_validations), num_samples=samples,
                                  trial_name_creator=trial_name, trial_dirname_creator=trial_name,
                                  reuse_actors=True)  # a finished trial's process (torch imported) runs the next
    planned: dict[str, int] = {}
    for variant in sweep.space.grid_variants():
        planned[variant["objective"]] = planned.get(variant["objective"], 0) + samples * config.seeds
    total = samples if config.search == "optuna" else sum(planned.values())
    progress = SweepProgress(total, config.metric, config.mode, sweep.base.seed, show=console,
                             costs=costs if config.search != "optuna" else None, planned=planned)
    run_config = tune.RunConfig(name=config.name, storage_path=storage.path, storage_filesystem=storage.filesystem,
                                verbose=0, callbacks=[progress, ForwardStop()],
                                failure_config=tune.FailureConfig(max_failures=config.max_failures),
                                checkpoint_config=tune.CheckpointConfig(num_to_keep=1))
    return tune.Tuner(trainable, param_space=param_space, tune_config=tune_config, run_config=run_config)


def trial_name(trial: Any) -> str:
    """``<trial id>-<objective>-seed<index>``: the trial's name and folder (the id comes first)."""
    choice = trial_choice(trial.config)
    return f"{trial.trial_id}-{choice.objective}-seed{choice.seed_index}"


def _search(space: SearchSpace, config: SweepConfig, seed: int, max_concurrent: int | None,
            costs: dict[str, float]) -> tuple[Any, dict[str, Any] | None, int]:
    """``(search algorithm, param_space, num_samples)``, running at most ``max_concurrent`` trials at once
    (Tune ignores ``TuneConfig.max_concurrent_trials`` when given a ``BasicVariantGenerator``); a grid or
    random search starts the most expensive objectives' trials first (``costs``)."""
    if config.search == "optuna":
        from ray.tune.search import ConcurrencyLimiter, Repeater
        from ray.tune.search.optuna import OptunaSearch

        searcher = OptunaSearch(space=space.optuna_space, metric=config.metric, mode=config.mode, seed=seed)
        if config.seeds > 1:  # Optuna sees the mean over the seeds of each configuration
            searcher = Repeater(searcher, repeat=config.seeds, set_index=True)
        if max_concurrent is not None:
            searcher = ConcurrencyLimiter(searcher, max_concurrent=max_concurrent)
        return searcher, None, config.num_samples * config.seeds
    from ray.tune.search import BasicVariantGenerator

    generator = BasicVariantGenerator(max_concurrent=max_concurrent or 0, constant_grid_search=True,
                                      random_state=seed)
    return generator, space.tune_param_space(costs), config.num_samples


def _scheduler(space: SearchSpace, config: SweepConfig, max_validations: int) -> Any:
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler, PopulationBasedTraining

    scheduler = config.scheduler
    if scheduler.name == "asha":  # max_t one past the last validation: a trial ends by itself and runs its on_end
        return ASHAScheduler(time_attr="validations", max_t=max_validations + 1, grace_period=scheduler.grace_period,
                             reduction_factor=scheduler.reduction_factor)
    if scheduler.name == "pbt":
        mutations = space.pbt_mutations()
        if not mutations["space"]:
            raise ConfigError("sweep.scheduler pbt needs a sampled key in sweep.space to mutate, e.g. "
                              "{train.lr: {loguniform: [1e-4, 1e-3]}}")
        return PopulationBasedTraining(time_attr="validations", perturbation_interval=scheduler.perturbation_interval,
                                       hyperparam_mutations=mutations)
    return FIFOScheduler()


def _write_outputs(base: Params, space: SearchSpace, records: list[TrialRecord], parent: ParentRun | None,
                   experiment_id: str | None, sweep: dict[str, str]) -> dict[str, Any]:
    config = base.sweep
    folder = Path(base.results_dir) / "sweep"
    trials_csv, best_yaml = folder / "trials.csv", folder / "best.yaml"
    write_trials_csv(records, trials_csv, config.metric)
    require_some_success(records, str(trials_csv))
    selections = select_best(records, config.mode)
    write_best_yaml(best_configurations(selections, space, config.metric, config.mode), best_yaml)
    tracking = ({"parent_run_id": parent.run_id, "experiment_id": experiment_id,
                 "tracking_uri": redact_uri(base.tracking.uri)}
                if parent is not None else {})
    models = export_models(selections, base, space, tracking, config.seeds, sweep)
    counts = {"total": len(records), "failed": sum(r.status == FAILED for r in records),
              "stopped_early": sum(r.status == STOPPED for r in records)}
    without_model = sorted(set(space.objectives) - set(selections))
    if parent is not None:
        parent.finish(selections, [best_yaml, trials_csv], config.metric, counts)
    return {"sweep_id": sweep["id"], "trials": counts["total"], "failed": counts["failed"],
            "stopped_early": counts["stopped_early"],
            "metric": config.metric, "mode": config.mode,
            "best": {name: _best_entry(selection) for name, selection in selections.items()},
            "without_model": without_model,
            "outputs": {"best_yaml": str(best_yaml), "trials_csv": str(trials_csv),
                        "models": {name: str(path) for name, path in models.items()}},
            "parent_run_id": parent.run_id if parent is not None else None}


def _best_entry(selection: Selection) -> dict[str, Any]:
    return {"mean": selection.mean, "std": selection.std, "seeds": len(selection.seeds),
            "trial_id": selection.best.trial_id, "values": selection.best.choice.values}


def _log_table(summary: dict[str, Any]) -> None:
    """The summary as a table in the log: one line per objective."""
    metric = summary["metric"]
    rows = [("objective", f"{metric} mean", "std", "seeds", "best trial", "values")]
    for name, entry in sorted(summary["best"].items()):
        rows.append((name, f"{entry['mean']:.4f}", f"{entry['std']:.4f}", str(entry["seeds"]), entry["trial_id"],
                     json.dumps(entry["values"]) if entry["values"] else "-"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)) + "  " + row[-1] for row in rows]
    log.info("sweep '%s': %d trials (%d failed, %d stopped early) in %.1f s (%s %s)\n%s", summary["name"],
             summary["trials"], summary["failed"], summary["stopped_early"], summary["wall_seconds"], summary["mode"],
             metric, "\n".join(lines))
    if summary["failed"]:
        log.warning("%d trial(s) failed; their errors are in %s", summary["failed"], summary["outputs"]["trials_csv"])
    if summary["without_model"]:
        log.warning("no trial of %s produced a model", ", ".join(summary["without_model"]))
