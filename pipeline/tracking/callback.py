"""``MLflowCallback``: logs one training run to MLflow (params, tags, metrics, images, checkpoints, model).

The run is addressed through an explicit ``MlflowClient`` and run id. The one exception is
``mlflow.pyfunc.log_model``, which reads MLflow's process-wide tracking URI and takes the logged
model's experiment from the active run: both are set for that call only.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import mlflow
import numpy as np
import torch
from mlflow.entities import Metric, Param
from mlflow.exceptions import MlflowException
from mlflow.models import ModelSignature
from mlflow.types import Schema, TensorSpec
from mlflow.utils.validation import MAX_METRICS_PER_BATCH, MAX_PARAMS_TAGS_PER_BATCH

from pipeline.config import CODE_ROOT, Params
from pipeline.errors import PipelineError, exception_summary
from pipeline.mlflow_model import (LOADER_MODULE, architecture_params, inference_checkpoint,
                                  logged_model_name)
from pipeline.redact import redact_data, redact_uri
from pipeline.tracking.images import labelled_strip
from pipeline.tracking.store import (HTTP_RETRY_DEFAULTS, artifact_root, ensure_experiment, flatten_params,
                                     is_remote, mlflow_name, record_error, start_run, tracking_uri)
from pipeline.tracking.tags import data_tags, git_tags, manifest_texts, objective_tags
from pipeline.train.callbacks import Callback, RunContext, Sample, TrainResult
from pipeline.train.checkpoint import load_checkpoint, save_checkpoint

log = logging.getLogger(__name__)

FLUSH_SECONDS = 30.0
MODEL_WEIGHTS = "weights.pt"
RUN_FILE = "mlflow_run.json"
NOT_RUN_PARAMS = ("sweep",)  # sections a training run does not read: a sweep's are on its parent run


def run_params(params: Params) -> dict[str, Any]:
    """What a run logs as params: its resolved configuration without the sections of ``NOT_RUN_PARAMS``
    (a trial would otherwise carry every other objective's ``sweep.objectives.*``)."""
    return {key: value for key, value in params.model_dump(mode="json").items() if key not in NOT_RUN_PARAMS}


def _chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    return (items[i:i + size] for i in range(0, len(items), size))


def _now_ms() -> int:
    return int(time.time() * 1000)


@contextmanager
def _process_tracking_uri(uri: str) -> Iterator[None]:
    """Point MLflow's process-wide tracking URI (and ``$MLFLOW_TRACKING_URI``) at ``uri``, then restore both."""
    saved_env = os.environ.get("MLFLOW_TRACKING_URI")
    saved_uri = mlflow.get_tracking_uri() if mlflow.is_tracking_uri_set() else None
    mlflow.set_tracking_uri(uri)
    try:
        yield
    finally:
        mlflow.set_tracking_uri(saved_uri)
        if saved_env is None:
            os.environ.pop("MLFLOW_TRACKING_URI", None)
        else:
            os.environ["MLFLOW_TRACKING_URI"] = saved_env


def _tolerant(action: str) -> Callable:
    """Mid-run tracking failures (any exception: a lost server, a full disk) become one warning and
    switch tracking off for the rest of the run; training and its checkpoints carry on."""

    def wrap(method: Callable) -> Callable:
        @functools.wraps(method)
        def guarded(self: "MLflowCallback", *args: Any) -> None:
            if self.run_id is None:
                return
            try:
                method(self, *args)
            except Exception as exc:  # noqa: BLE001 - tracking must never stop training
                log.warning("MLflow tracking failed while %s (%s); training goes on untracked, checkpoints "
                            "stay in %s", action, exception_summary(exc), self._run_dir)
                self.run_id = None

        return guarded

    return wrap


class MLflowCallback(Callback):
    """Logs one training run to MLflow: params, git and data tags, metrics, comparison images,
    checkpoints and the model (``runs:/<run_id>/<objective>-seed<seed>``, weights only, loadable with
    ``load_super_resolver``).

    Where and what comes from ``params.tracking`` at ``on_start``; ``parent_run_id`` nests the run
    under a sweep's parent run. The run id is kept in ``<run_dir>/mlflow_run.json``: a resumed ``fit``
    (``start_iteration > 0``) continues that run instead of starting another, and ``continue_run_id``
    continues a given run (a sweep trial restarted elsewhere); a continued run keeps its first params.
    The model is logged as ``model_name`` (default ``<loss.objective>-seed<seed>``).
    A run that raises ends FAILED with the error in its ``error`` tag and the traceback in
    ``error.txt`` (KILLED, tagged ``stopped_by``, on Ctrl-C or a ``SystemExit``). Each data manifest
    is logged as ``data/<name>_manifest.json`` and tagged ``data.<name>.sha256`` (the file's hash).
    Training metrics are buffered and sent in batches every ``flush_seconds``, at each
    validation and at each checkpoint; the best checkpoint is uploaded on each improvement, the last one at the end.
    For HTTP stores it sets, unless already set,
    ``MLFLOW_HTTP_REQUEST_MAX_RETRIES=2`` and ``MLFLOW_HTTP_REQUEST_TIMEOUT=10`` in this process.
    Failures at ``on_start`` raise ``PipelineError``; later ones warn and stop tracking only.
    """

    def __init__(self, parent_run_id: str | None = None, run_name: str | None = None,
                 tags: dict[str, str] | None = None, flush_seconds: float = FLUSH_SECONDS,
                 continue_run_id: str | None = None, model_name: str | None = None):
        self.parent_run_id = parent_run_id
        self.model_name = model_name
        self.continue_run_id = continue_run_id
        self.run_name = run_name
        self.tags = dict(tags or {})
        self.flush_seconds = flush_seconds
        self.run_id: str | None = None
        self._client: mlflow.MlflowClient | None = None
        self._uri = ""
        self._run_dir: Path | None = None
        self._log_images = 0
        self._log_model = False
        self._select_metric = ""
        self._objective_name = ""
        self._pending: list[Metric] = []
        self._last_flush = 0.0

    def on_start(self, ctx: RunContext) -> None:
        config = ctx.params.tracking
        if not config.enabled:
            return
        self._uri = tracking_uri(ctx.params)
        if is_remote(self._uri):
            for name, value in HTTP_RETRY_DEFAULTS.items():
                os.environ.setdefault(name, value)
        self._run_dir = ctx.run_dir
        self._log_images = config.log_images
        self._log_model = config.log_model
        self._select_metric = ctx.params.train.select_metric
        experiment_id = ensure_experiment(self._uri, config.experiment, artifact_root(ctx.params))
        manifests = manifest_texts(ctx.data_manifest)
        tags = {**git_tags(CODE_ROOT), **data_tags(manifests),
                "model": ctx.params.model.name, **objective_tags(ctx.params.loss.objective),
                "scale": str(ctx.params.train.scale), **self.tags}
        self._objective_name = tags["objective"]
        run_name = self.run_name or ctx.run_dir.name
        try:
            self._client = mlflow.MlflowClient(self._uri)
            continued = self._run_to_continue(ctx, experiment_id)
            if continued is not None:
                self.run_id = continued
                self._client.update_run(continued, status="RUNNING")
                self._client.set_tag(continued, "resumed_from_iteration", str(ctx.start_iteration))
                log.info("continuing MLflow run %s from iteration %d", continued, ctx.start_iteration)
            else:
                self.run_id = start_run(self._uri, experiment_id, run_name, tags, self.parent_run_id)
                params = [Param(key, value) for key, value in {
                    **flatten_params(redact_data(run_params(ctx.params))),
                    **{key: str(value) for key, value in ctx.budget.items()}}.items()]
                for chunk in _chunks(params, MAX_PARAMS_TAGS_PER_BATCH):
                    self._client.log_batch(self.run_id, params=chunk)
                self._client.log_dict(self.run_id, redact_data(ctx.params.model_dump(mode="json")), "params.yaml")
                for name, text in manifests.items():
                    self._client.log_text(self.run_id, text, f"data/{name}_manifest.json")
            ctx.run_dir.mkdir(parents=True, exist_ok=True)
            (ctx.run_dir / RUN_FILE).write_text(json.dumps(
                {"run_id": self.run_id, "experiment_id": experiment_id, "tracking_uri": redact_uri(self._uri)}))
        except (MlflowException, OSError) as exc:
            raise PipelineError(
                f"MLflow store {self._uri} refused the run ({exception_summary(exc)}); fix tracking.uri / "
                "MLFLOW_TRACKING_URI or set tracking.enabled=false"
            ) from None
        self._last_flush = time.monotonic()

    def _run_to_continue(self, ctx: RunContext, experiment_id: str) -> str | None:
        """``continue_run_id``, else on resume the run recorded in ``run_dir`` for this store and
        experiment when it still exists, else None."""
        if self.continue_run_id is not None:
            return self.continue_run_id
        saved = ctx.run_dir / RUN_FILE
        if ctx.start_iteration == 0 or not saved.is_file():
            return None
        try:
            record = json.loads(saved.read_text())
        except json.JSONDecodeError:
            log.warning("'%s' is not valid JSON; the resumed run is tracked as a new MLflow run", saved)
            return None
        if record.get("tracking_uri") != redact_uri(self._uri) or record.get("experiment_id") != experiment_id:
            return None
        try:
            run = self._client.get_run(record["run_id"])
        except MlflowException:
            log.warning("MLflow run %s of '%s' no longer exists; the resumed run is tracked as a new run",
                        record["run_id"], saved)
            return None
        return None if run.info.lifecycle_stage == "deleted" else run.info.run_id

    @_tolerant("logging training metrics")
    def on_train_log(self, iteration: int, logs: dict[str, float]) -> None:
        self._queue(iteration, logs)
        if len(self._pending) >= MAX_METRICS_PER_BATCH or time.monotonic() - self._last_flush >= self.flush_seconds:
            self._flush()

    @_tolerant("logging validation results")
    def on_validation(self, iteration: int, metrics: dict[str, float], samples: list[Sample]) -> None:
        self._queue(iteration, metrics)
        self._flush()
        for name, bicubic, sr, hr in samples[: self._log_images]:
            strip = labelled_strip([("bicubic", bicubic), (f"SR ({self._objective_name})", sr), ("HR", hr)])
            self._client.log_image(self.run_id, strip, key=mlflow_name(f"bicubic-sr-hr/{name}"), step=iteration)

    @_tolerant("uploading the best checkpoint")
    def on_checkpoint(self, iteration: int, path: Path, is_best: bool) -> None:
        """Send the buffered metrics first: a run resumed from this checkpoint keeps every point it covers."""
        self._flush()
        if is_best:
            self._client.log_artifact(self.run_id, str(path), "checkpoints")

    @_tolerant("finishing the run")
    def on_end(self, result: TrainResult) -> None:
        self._flush()
        final = [Metric(mlflow_name(f"final/{key}"), float(value), _now_ms(), result.iterations)
                 for key, value in result.final_metrics.items()]
        if result.best_metric is not None:
            final += [Metric(mlflow_name(f"best/{self._select_metric}"), float(result.best_metric), _now_ms(),
                             result.iterations),
                      Metric("best/iteration", float(result.best_iteration or 0), _now_ms(), result.iterations)]
        for chunk in _chunks(final, MAX_METRICS_PER_BATCH):
            self._client.log_batch(self.run_id, metrics=chunk)
        self._client.log_artifact(self.run_id, str(result.last_checkpoint), "checkpoints")
        if self._log_model:
            self._log_super_resolver(result.best_checkpoint or result.last_checkpoint, result.iterations)
        self._client.set_terminated(self.run_id, "FINISHED")

    @_tolerant("recording the failure")
    def on_failure(self, error: BaseException) -> None:
        self._flush()
        if isinstance(error, (KeyboardInterrupt, SystemExit)):  # Ctrl-C, or a scheduler stopping a sweep trial
            self._client.set_tag(self.run_id, "stopped_by", type(error).__name__)
            self._client.set_terminated(self.run_id, "KILLED")
            return
        record_error(self._client, self.run_id, error)

    def _queue(self, iteration: int, values: dict[str, float]) -> None:
        now = _now_ms()
        self._pending += [Metric(mlflow_name(key), float(value), now, iteration) for key, value in values.items()]

    def _flush(self) -> None:
        pending, self._pending = self._pending, []
        for chunk in _chunks(pending, MAX_METRICS_PER_BATCH):
            self._client.log_batch(self.run_id, metrics=chunk)
        self._last_flush = time.monotonic()

    def _log_super_resolver(self, checkpoint: Path, iteration: int) -> None:
        """Log the checkpoint's networks as model ``<objective>-seed<seed>`` in srloss's weights-only
        format (``pipeline.mlflow_model``): a checkpoint without optimiser state plus the architecture
        as the model's params; loading it unpickles nothing.
        """
        trained = load_checkpoint(checkpoint)
        meta = trained["meta"]
        name = self.model_name or logged_model_name(meta["loss"]["objective"], meta["params"]["seed"])
        signature = ModelSignature(inputs=Schema([TensorSpec(np.dtype(np.float32), (-1, 3, -1, -1))]),
                                   outputs=Schema([TensorSpec(np.dtype(np.float32), (-1, 3, -1, -1))]))
        with tempfile.TemporaryDirectory(prefix="srloss-model-") as folder:
            weights = Path(folder) / MODEL_WEIGHTS
            save_checkpoint(weights, inference_checkpoint(trained))
            with _process_tracking_uri(self._uri), mlflow.start_run(run_id=self.run_id):
                mlflow.pyfunc.log_model(
                    name=name, loader_module=LOADER_MODULE, data_path=str(weights), signature=signature,
                    params=flatten_params(architecture_params(meta)), step=iteration,
                    pip_requirements=[f"torch=={torch.__version__.split('+')[0]}"],
                    tags={"checkpoint": checkpoint.name,
                          "description": f"{meta['model']['name']} x{meta['scale']} trained with the "
                                         f"'{meta['loss']['objective']}' objective"},
                )
