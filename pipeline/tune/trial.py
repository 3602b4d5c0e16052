"""One sweep trial: the Ray Tune function that trains one configuration with ``fit``.

The trial builds its ``Params`` from the driver's base params and its Tune config
(``SearchSpace.trial_params``), trains in a temporary folder and reports every validation with
``ray.tune.report`` and its ``checkpoints`` folder (``last.pt`` + ``best.pt``), which Tune copies
to the sweep folder: that copy is the only one kept. Restarted (a retry after a failure,
``--resume``, a PBT exploit) it continues from ``ray.tune.get_checkpoint()``, and its MLflow child
run, found by its ``sweep.trial_id`` tag, is continued rather than duplicated. The run is named by
what the trial trains (``run_name``), and the trial's log records go to
``<results_dir>/sweep/logs/<trial name>.log``.
"""

from __future__ import annotations

import math
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.config import Params, TrainConfig
from pipeline.mlflow_model import logged_model_name
from pipeline.tracking.callback import MLflowCallback
from pipeline.tracking.store import find_run, tracking_uri
from pipeline.train.callbacks import Callback, RunContext, Sample
from pipeline.train.loop import fit
from pipeline.tune.log_file import log_to_file
from pipeline.tune.shared_data import node_data_dir
from pipeline.tune.space import SearchSpace, TrialChoice, trial_choice
from pipeline.tune.storage import Storage

TRIAL_TAG = "sweep.trial_id"
PARENT_TAG = "mlflow.parentRunId"


@dataclass(frozen=True)
class SweepRun:
    """What every trial of a sweep needs, fixed on the driver: the resolved base params (absolute
    paths, explicit tracking URI), the space, the sweep folder, the MLflow parent run and experiment
    (None when tracking is off) and the training data published to an object store (None: the
    trials read ``data_dir``, which every node then mounts)."""

    base: Params
    space: SearchSpace
    folder: Storage
    parent_run_id: str | None
    experiment_id: str | None
    published_data: Storage | None = None

    def trial_params(self, choice: TrialChoice) -> Params:
        """The trial's params; with published data, ``data_dir`` is this node's copy of it."""
        params = self.space.trial_params(self.base, choice)
        if self.published_data is not None:
            params.data_dir = node_data_dir(self.published_data)
        return params


class TuneReporter(Callback):
    """Sends each validation to Ray Tune: the metrics, ``iteration``, ``iterations`` (the run's total)
    and ``validations`` (ceil(iteration / val_every): the schedulers' time attribute, counted from the
    restored iteration so that it stays right when a trial restarts), with the checkpoints folder.

    Put it after the other callbacks: when the scheduler stops the trial, the report raises
    ``SystemExit`` and the callbacks after it miss that validation.
    """

    def __init__(self, train: TrainConfig, send: Callable[[dict[str, Any], Path], None]):
        self.val_every = train.val_every
        self.iterations = train.iterations
        self.send = send
        self.checkpoints = Path()

    def on_start(self, ctx: RunContext) -> None:
        self.checkpoints = ctx.run_dir / "checkpoints"
        self.iterations = ctx.params.train.iterations  # as train.budget resolved it

    def on_validation(self, iteration: int, metrics: dict[str, float], samples: list[Sample]) -> None:
        report = {**metrics, "iteration": iteration, "iterations": self.iterations,
                  "validations": math.ceil(iteration / self.val_every)}
        self.send(report, self.checkpoints)


def run_trial(config: dict[str, Any], sweep: SweepRun) -> None:
    """The Tune function of a one-process trial (``sweep.resources.workers`` 1)."""
    from ray import tune

    context = tune.get_context()
    choice = trial_choice(config)
    params = sweep.trial_params(choice)
    logs = Path(sweep.base.results_dir) / "sweep" / "logs" / f"{context.get_trial_name()}.log"
    with tempfile.TemporaryDirectory(prefix=f"srloss-{context.get_trial_id()}-") as folder, log_to_file(logs):
        run_dir = Path(folder)
        resume = restore_checkpoints(tune.get_checkpoint(), run_dir)
        callbacks = [*tracking_callbacks(sweep, params, context.get_trial_id(), choice),
                     TuneReporter(params.train, _report_to_tune)]
        fit(params, run_dir, callbacks, resume)


def _report_to_tune(metrics: dict[str, Any], checkpoints: Path) -> None:
    from ray import tune

    tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(str(checkpoints)))


def restore_checkpoints(checkpoint: Any, run_dir: Path) -> Path | None:
    """Replace ``run_dir/checkpoints`` by a reported checkpoint's files; the ``last.pt`` to resume
    from, or None without a checkpoint."""
    if checkpoint is None:
        return None
    folder = run_dir / "checkpoints"
    shutil.rmtree(folder, ignore_errors=True)
    checkpoint.to_directory(str(folder))
    return folder / "last.pt"


def trial_tags(sweep_name: str, trial_id: str, choice: TrialChoice) -> dict[str, str]:
    """The tags of a trial's MLflow child run; ``sweep.trial_id`` finds it again, ``objective`` is the
    sweep's name for the objective (``l1``, ``grad2``)."""
    return {TRIAL_TAG: trial_id, "sweep.name": sweep_name, "sweep.objective": choice.objective,
            "sweep.seed_index": str(choice.seed_index), "objective": choice.objective}


def run_name(choice: TrialChoice, seed: int) -> str:
    """What a trial trains, as its MLflow run name: ``<objective> [<key>=<value> ...] seed<seed>``, each
    searched key shortened to its last part (``loss.terms.grad2`` -> ``grad2``), e.g. ``grad2 grad2=0.3 seed1``."""
    values = [f"{key.rsplit('.', 1)[-1]}={_short(value)}" for key, value in choice.values.items()]
    return " ".join([choice.objective, *values, f"seed{seed}"])


def _short(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def tracking_callbacks(sweep: SweepRun, params: Params, trial_id: str, choice: TrialChoice) -> list[Callback]:
    """The trial's MLflow callback, continuing its child run when an earlier attempt made one."""
    if sweep.parent_run_id is None or sweep.experiment_id is None:
        return []
    earlier = find_run(tracking_uri(params), sweep.experiment_id,
                       {TRIAL_TAG: trial_id, PARENT_TAG: sweep.parent_run_id})
    return [MLflowCallback(parent_run_id=sweep.parent_run_id, run_name=run_name(choice, params.seed),
                           tags=trial_tags(sweep.base.sweep.name, trial_id, choice), continue_run_id=earlier,
                           model_name=logged_model_name(choice.objective, params.seed))]
