"""A data-parallel sweep trial (``sweep.resources.workers`` > 1) with Ray Train's ``TorchTrainer``.

With Ray Train V2 a Tuner cannot run a trainer as its trainable, so the trial's Tune function
builds the ``TorchTrainer`` itself: ``workers`` processes, each with ``resources.cpu`` CPUs and
``resources.gpu`` GPUs, joined in a gloo (CPU) or NCCL (GPU) process group in which ``fit`` trains
data-parallel (``pipeline.train.distributed``). Every rank calls ``ray.train.report`` at each
validation, rank 0 with the checkpoints folder; ``TuneReportCallback`` forwards rank 0's metrics
(and the checkpoint's storage path as ``checkpoint_path``) to Tune. The Train run keeps its
checkpoints in ``<trial folder>/ddp``, where a restarted trial's new trainer finds them again.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pipeline.train.callbacks import Callback
from pipeline.tune.space import trial_choice
from pipeline.tune.trial import SweepRun, TuneReporter, restore_checkpoints, tracking_callbacks

DDP_RUN_NAME = "ddp"


def run_ddp_trial(config: dict[str, Any], sweep: SweepRun, worker: Callable[[dict[str, Any]], None] | None = None,
                  backend: str | None = None) -> None:
    """The Tune function of a data-parallel trial: ``worker`` (default: train one rank) on each
    Train worker, in a ``backend`` process group (default: NCCL with GPUs, else gloo)."""
    from ray import train, tune
    from ray.train.torch import TorchConfig, TorchTrainer
    from ray.tune.integration.ray_train import TuneReportCallback

    context = tune.get_context()
    resources = sweep.base.sweep.resources
    per_worker = {"CPU": resources.cpu, **({"GPU": resources.gpu} if resources.gpu else {})}
    trial_folder = sweep.folder.child(Path(context.get_trial_dir()).name)
    trainer = TorchTrainer(
        worker or _train_worker,
        train_loop_config={"config": config, "sweep": sweep, "trial_id": context.get_trial_id()},
        scaling_config=train.ScalingConfig(num_workers=resources.workers, use_gpu=resources.gpu > 0,
                                           resources_per_worker=per_worker),
        run_config=train.RunConfig(name=DDP_RUN_NAME, storage_path=trial_folder.path,
                                   storage_filesystem=trial_folder.filesystem, callbacks=[TuneReportCallback()],
                                   failure_config=train.FailureConfig(max_failures=0),
                                   checkpoint_config=train.CheckpointConfig(num_to_keep=1)),
        torch_config=TorchConfig(backend=backend or ("nccl" if resources.gpu > 0 else "gloo")),
    )
    trainer.fit()


def _train_worker(setup: dict[str, Any]) -> None:
    """One rank: train in a temporary folder, resuming from the Train run's latest checkpoint."""
    from ray import train
    from ray.train.torch import get_device

    from pipeline.train.loop import fit

    sweep: SweepRun = setup["sweep"]
    choice = trial_choice(setup["config"])
    params = sweep.trial_params(choice)
    params.train.device = str(get_device())
    rank = train.get_context().get_world_rank()

    def report(metrics: dict[str, Any], checkpoints: Path) -> None:
        checkpoint = train.Checkpoint.from_directory(str(checkpoints)) if rank == 0 else None
        train.report(metrics, checkpoint=checkpoint)

    with tempfile.TemporaryDirectory(prefix=f"srloss-{setup['trial_id']}-rank{rank}-") as folder:
        run_dir = Path(folder)
        resume = restore_checkpoints(train.get_checkpoint(), run_dir)
        callbacks: list[Callback] = [TuneReporter(params.train, report)]
        if rank == 0:  # rank 0 alone tracks; the MLflow callback goes first (see TuneReporter)
            callbacks = [*tracking_callbacks(sweep, params, setup["trial_id"], choice), *callbacks]
        fit(params, run_dir, callbacks, resume)
