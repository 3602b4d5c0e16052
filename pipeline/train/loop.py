"""``fit``: train one network with one objective for ``train.iterations`` iterations (or as many as
``train.budget.flops`` buys: ``pipeline.train.flops.resolve_budget``, once, before anything else).

Each iteration (``it`` counts the iterations done before it, from 0):
``features = net(lr)``; ``out = objective(features)``; ``sr = objective.decode(out)``;
``objective.aux_step(sr.detach(), hr, it)`` (the objective's own networks); ``losses =
objective.loss(out, hr, it)``; backward of ``losses["total"]`` (loss-scaled under fp16), optional
gradient-norm clipping, an Adam/AdamW step over the network and ``objective.sr_parameters()``,
the EMA update. The LR follows ``pipeline.train.schedule``.

Iteration numbers given to callbacks and stored in checkpoints count completed iterations.
Resuming from ``last.pt`` restores weights, optimiser moments, EMA, loss scaler, the objective's
own optimisers, the random generators and the best metric (``pipeline.train.resume``); batches
depend only on ``(seed, iteration)``, so a resumed run ends bitwise equal to an uninterrupted one.
Hyperparameters (LR, betas, weight decay) always come from ``params``.

Inside an initialised ``torch.distributed`` process group (``pipeline.train.distributed``) each of
the ``W`` ranks trains on batches ``i * W + rank`` with gradients averaged over the ranks; only
rank 0 validates, writes checkpoints and gets ``on_checkpoint``. Every rank must resume from the
same checkpoint. Without a process group nothing changes.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from pipeline.config import Params, TrainConfig
from pipeline.data.image_store import stored_pairs
from pipeline.data.manifests import read_manifests
from pipeline.data.paired import ImagePair, PairedPatchDataset, load_pairs
from pipeline.errors import PipelineError
from pipeline.interrupt import StopSignals
from pipeline.objectives.base import Objective
from pipeline.train.callbacks import Callback, RunContext, TrainResult
from pipeline.train.checkpoint import save_checkpoint
from pipeline.train.cpus import available_cpus
from pipeline.train.device import DeviceSetup, prepare_device
from pipeline.train.distributed import gradients_averaged, rank_and_world_size, share_from_rank0
from pipeline.train.flops import resolve_budget
from pipeline.train.resume import RunState, start_or_resume
from pipeline.train.run_folder import refuse_finished_run, remove_orphaned_temp_files, run_folder_lock
from pipeline.train.schedule import LrSchedule
from pipeline.train.validation import Sample, Validator

log = logging.getLogger(__name__)


def fit(params: Params, run_dir: Path, callbacks: Sequence[Callback] = (), resume: Path | None = None,
        overwrite: bool = False, stop: StopSignals | None = None) -> TrainResult:
    """Train, validate and checkpoint one run into ``run_dir/checkpoints/{last,best}.pt``.

    With ``stop``, a stop signal it recorded ends the run after the current iteration: ``last.pt``
    is written at that iteration (a resume from it ends bitwise equal to an uninterrupted run) and
    ``Interrupted`` is raised (``pipeline.interrupt``).

    The run holds ``run_dir``'s exclusive lock (``pipeline.train.run_folder``) throughout; a run
    folder that already holds checkpoints is refused unless the run resumes or ``overwrite`` is set.
    Temporary files of checkpoint writes killed earlier are removed first.
    """
    run_dir = Path(run_dir)
    with run_folder_lock(run_dir):
        if resume is None and not overwrite:
            refuse_finished_run(run_dir)
        remove_orphaned_temp_files(run_dir / "checkpoints")
        return _fit(params, run_dir, callbacks, resume, stop)


def _fit(params: Params, run_dir: Path, callbacks: Sequence[Callback], resume: Path | None,
         stop: StopSignals | None) -> TrainResult:
    """The training of ``fit``, inside the run folder's lock.

    A non-finite total loss stops the run with a ``PipelineError`` naming its iteration; it is
    checked one iteration late (so the host never waits for the device in between) and always
    before a validation or checkpoint, so no checkpoint ever holds diverged weights. When the run
    raises after ``on_start``, each callback's ``on_failure`` gets the error before it propagates.
    """
    params, budget = resolve_budget(params, resume)  # train.iterations as train.budget buys, before anything uses it
    config = params.train
    last_path, best_path = _checkpoint_paths(run_dir)
    setup = prepare_device(config)
    rank, world_size = rank_and_world_size()

    dataset, validator = _training_data(params, setup, rank)
    run = start_or_resume(params, setup, resume, world_size)
    net, objective, optimizer, best, start = run.net, run.objective, run.optimizer, run.best, run.start
    run.meta["budget"] = asdict(budget)
    schedule = LrSchedule(config.scheduler, config.iterations, config.lr)

    ctx = RunContext(params=params, run_dir=run_dir, model=net, objective=objective, device=setup.device,
                     data_manifest=read_manifests(Path(params.data_dir)), start_iteration=start,
                     budget=budget.logged())
    for callback in callbacks:
        callback.on_start(ctx)
    with _failures_reported_to(callbacks), gradients_averaged([net, objective], world_size):
        train_net = torch.compile(net) if setup.compile else net
        loader = _batch_loader(dataset, config, start, rank, world_size, params.seed, setup)
        window = _LogWindow()
        unchecked: tuple[int, Tensor] | None = None
        final_metrics: dict[str, float] = {}
        started = time.perf_counter()
        net.train()
        objective.train()
        with tqdm(total=config.iterations, initial=start, disable=not config.progress or rank > 0, unit="it",
                  dynamic_ncols=True, desc=f"{params.model.name}/{params.loss.objective}") as progress:
            for iteration, batch in zip(range(start, config.iterations), loader):
                lr_now = _set_lr(optimizer, schedule(iteration))
                lr_images, hr_images = batch_to_device(batch, setup)
                losses, aux_logs = train_step(train_net, objective, optimizer, run.scaler, setup, config.grad_clip,
                                              lr_images, hr_images, iteration)
                if unchecked is not None:  # the previous loss: checking it now waits for no device work
                    _stop_if_diverged(*unchecked, last_path)
                done = iteration + 1
                unchecked = (done, losses["total"])
                if run.ema is not None:
                    run.ema.update()
                window.add(losses, aux_logs)
                progress.update(1)
                run.steps.lap()

                if done % config.log_every == 0 or done == config.iterations:
                    logs = {**window.flush(), "train/lr": lr_now}
                    progress.set_postfix(loss=f"{logs['train/total']:.4g}", refresh=False)
                    for callback in callbacks:
                        callback.on_train_log(done, logs)

                validate_now = done % config.val_every == 0 or done == config.iterations
                checkpoint_now = done % config.checkpoint_every == 0 or done == config.iterations
                if validate_now or checkpoint_now:
                    _stop_if_diverged(*unchecked, last_path)
                is_best = False
                if validate_now:
                    final_metrics, samples = _validate(validator, run, world_size)
                    is_best = _improves(best, final_metrics, config, done)
                    if is_best and rank == 0:
                        save_checkpoint(best_path, run.state(done))
                if checkpoint_now and rank == 0:
                    save_checkpoint(last_path, run.state(done))
                _report_validation_and_checkpoints(callbacks, rank, done, (final_metrics, samples) if validate_now
                                                   else None, is_best, checkpoint_now, best_path, last_path)
                run.steps.restart()  # logs, validation and checkpoints are in no step's time
                if stop is not None and stop.received is not None:
                    _end_at_signal(stop, done, unchecked, last_path, run.state if rank == 0 and not checkpoint_now
                                   else None)

        return _finish(params, setup, run_dir, callbacks, validator, run, world_size, final_metrics,
                       trained=config.iterations - start, started=started)


def _checkpoint_paths(run_dir: Path) -> tuple[Path, Path]:
    """``(last.pt, best.pt)`` of the run folder."""
    return run_dir / "checkpoints" / "last.pt", run_dir / "checkpoints" / "best.pt"


def _finish(params: Params, setup: DeviceSetup, run_dir: Path, callbacks: Sequence[Callback],
            validator: Validator | None, run: RunState, world_size: int, final_metrics: dict[str, float],
            trained: int, started: float) -> TrainResult:
    """The run's result after its last iteration (validated now if the last iteration was not), logged
    in one line with the speed since ``started`` (``time.perf_counter``) and given to every callback's
    ``on_end``."""
    config = params.train
    last_path, best_path = _checkpoint_paths(run_dir)
    if not final_metrics:
        final_metrics, samples = _validate(validator, run, world_size)
        for callback in callbacks:
            callback.on_validation(config.iterations, final_metrics, samples)
    result = TrainResult(iterations=config.iterations, best_metric=run.best["value"],
                         best_iteration=run.best["iteration"], final_metrics=final_metrics, last_checkpoint=last_path,
                         best_checkpoint=best_path if best_path.is_file() else None, run_dir=run_dir)
    _log_summary(params, setup, result, trained, time.perf_counter() - started)
    for callback in callbacks:
        callback.on_end(result)
    return result


def _set_lr(optimizer: torch.optim.Optimizer, lr: float) -> float:
    """Set every parameter group's learning rate to ``lr``; returns it."""
    for group in optimizer.param_groups:
        group["lr"] = lr
    return lr


def _report_validation_and_checkpoints(callbacks: Sequence[Callback], rank: int, done: int,
                                       validation: tuple[dict[str, float], list[Sample]] | None, is_best: bool,
                                       checkpoint_now: bool, best_path: Path, last_path: Path) -> None:
    """``on_validation`` on every rank when ``validation`` (metrics, samples) was measured, then, on rank 0
    only, ``on_checkpoint`` for the best checkpoint when it improved and for the last one when it was written."""
    if validation is not None:
        for callback in callbacks:
            callback.on_validation(done, *validation)
    for callback in callbacks if rank == 0 else ():
        if is_best:
            callback.on_checkpoint(done, best_path, True)
        if checkpoint_now:
            callback.on_checkpoint(done, last_path, False)


def _training_data(params: Params, setup: DeviceSetup, rank: int) -> tuple[PairedPatchDataset, Validator | None]:
    """The training patches, and on rank 0 the validator of the ``val`` split and ``train.val_benchmarks``."""
    config = params.train
    data_dir = Path(params.data_dir)
    dataset = PairedPatchDataset(_training_pairs(data_dir, config, "train"),
                                 config.patch_size, config.scale, config.batch_size, params.seed)
    validator = Validator({split: _training_pairs(data_dir, config, split) for split in ("val", *config.val_benchmarks)},
                          config.scale, params.metrics, setup, params.tracking.log_images,
                          params.evaluate.crop_size) if rank == 0 else None
    return dataset, validator


def _batch_loader(dataset: PairedPatchDataset, config: TrainConfig, start: int, rank: int, world_size: int,
                  seed: int, setup: DeviceSetup) -> DataLoader:
    """The batches of iterations ``start..`` for this rank: batch ``i * W + rank`` at iteration ``i``."""
    batches = range(start * world_size + rank, config.iterations * world_size, world_size)
    return DataLoader(dataset, batch_size=None, sampler=batches,
                      num_workers=config.num_workers, pin_memory=setup.device.type == "cuda",
                      generator=torch.Generator().manual_seed(seed))


def _validate(validator: Validator | None, run: RunState, world_size: int) -> tuple[dict[str, float], list[Sample]]:
    """Rank 0 measures (with the EMA weights when there are any); in a process group the other ranks
    get its metrics and no samples."""
    metrics: dict[str, float] = {}
    samples: list[Sample] = []
    if validator is not None:
        with run.ema.applied() if run.ema is not None else contextlib.nullcontext():
            metrics, samples = validator(run.net, run.objective)
    return (share_from_rank0(metrics) if world_size > 1 else metrics), samples


def _log_summary(params: Params, setup: DeviceSetup, result: TrainResult, trained: int, elapsed: float) -> None:
    """One line: iterations and speed, the selection metric, the best one and the bicubic baseline."""
    config = params.train
    best_text = ("none" if result.best_metric is None
                 else f"{result.best_metric:.4f} at iteration {result.best_iteration}")
    log.info("%s/%s x%d: %d iterations in %.1f s (%.2f it/s) on %s; %s %.4f, best %s, bicubic val/psnr %.4f; "
             "checkpoints in %s", params.model.name, params.loss.objective, config.scale, trained, elapsed,
             trained / max(elapsed, 1e-9), setup.device, config.select_metric,
             result.final_metrics.get(config.select_metric, math.nan), best_text,
             result.final_metrics.get("val/bicubic_psnr", math.nan), result.last_checkpoint.parent)


@contextlib.contextmanager
def _failures_reported_to(callbacks: Sequence[Callback]) -> Iterator[None]:
    """Call every callback's ``on_failure`` with an error raised inside, then re-raise it."""
    try:
        yield
    except BaseException as error:
        for callback in callbacks:
            callback.on_failure(error)
        raise


def train_step(net: nn.Module, objective: Objective, optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler,
               setup: DeviceSetup, grad_clip: float | None, lr: Tensor, hr: Tensor,
               iteration: int) -> tuple[dict[str, Tensor], dict[str, float]]:
    """One iteration: the objective's ``aux_step``, then one SR update of everything ``optimizer``
    holds. Returns the detached loss terms (``total`` included) and the aux logs."""
    optimizer.zero_grad(set_to_none=True)
    with setup.autocast():
        out = objective(net(lr))
    aux_logs: dict[str, float] = {}
    if objective.has_aux_step:  # decode only for objectives with their own update (TLW, GAN)
        with torch.no_grad():  # aux_step sees a detached SR: no graph is kept for this decode
            sr = objective.decode(out).float()
        aux_logs = objective.aux_step(sr, hr, iteration)
    with setup.autocast():
        losses = objective.loss(out, hr, iteration)
    scaler.scale(losses["total"]).backward()
    if grad_clip is not None:
        scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_([p for group in optimizer.param_groups for p in group["params"]], grad_clip)
    scaler.step(optimizer)
    scaler.update()
    return {name: value.detach() for name, value in losses.items()}, aux_logs


def batch_to_device(batch: dict[str, Tensor], setup: DeviceSetup) -> tuple[Tensor, Tensor]:
    """uint8 ``lr``/``hr`` batches -> float in [0, 1] on the device (converted there: 4x less to copy)."""
    lr, hr = (batch[key].to(setup.device, non_blocking=True).float().div_(255)
              .contiguous(memory_format=setup.memory_format) for key in ("lr", "hr"))
    return lr, hr


class _LogWindow:
    """Means of the loss terms and aux logs since the last flush; sums stay on the device."""

    def __init__(self) -> None:
        self.sums: dict[str, Tensor | float] = {}
        self.count = 0

    def add(self, losses: dict[str, Tensor], aux_logs: dict[str, float]) -> None:
        for name, value in {**losses, **aux_logs}.items():
            self.sums[f"train/{name}"] = self.sums.get(f"train/{name}", 0.0) + value
        self.count += 1

    def flush(self) -> dict[str, float]:
        means = {name: float(total) / self.count for name, total in self.sums.items()}
        self.sums, self.count = {}, 0
        return means


def _end_at_signal(stop: StopSignals, done: int, unchecked: tuple[int, Tensor], last_path: Path,
                   state: Callable[[int], dict[str, Any]] | None) -> None:
    """After iteration ``done``, for a recorded stop signal: write ``last.pt`` with ``state`` (unless
    None: not rank 0, or just written), if the loss is finite, then raise ``Interrupted``."""
    _stop_if_diverged(*unchecked, last_path)
    if state is not None:
        save_checkpoint(last_path, state(done))
    stop.check(f"at iteration {done}")


def _stop_if_diverged(iteration: int, total: Tensor, last_path: Path) -> None:
    if not torch.isfinite(total):
        last = last_path if last_path.is_file() else "not written yet"
        raise PipelineError(f"training diverged at iteration {iteration} (loss={total.item()}); lower train.lr or "
                            f"enable train.grad_clip; the last good checkpoint is {last}")


def _improves(best: dict[str, Any], metrics: dict[str, float], config: TrainConfig, done: int) -> bool:
    """Update ``best`` in place when ``metrics[select_metric]`` beats it."""
    name = config.select_metric
    if name not in metrics:
        raise PipelineError(f"train.select_metric '{name}' is not a validation metric; "
                            f"choose one of: {', '.join(sorted(metrics))}")
    value = metrics[name]
    better = best["value"] is None or (value > best["value"] if config.select_mode == "max" else value < best["value"])
    if better:
        best.update(value=value, iteration=done)
    return better


def _training_pairs(data_dir: Path, config: TrainConfig, split: str) -> Sequence[ImagePair]:
    """``split``'s pairs, mapped from the node's image store or decoded into this process (``train.image_store``)."""
    if config.image_store == "mapped":
        return stored_pairs(data_dir, config.degradation, config.scale, split, threads=available_cpus())
    return load_pairs(data_dir, config.degradation, config.scale, split)
