"""MLflow tracking: where runs are stored, a fail-fast check of the server, and the training callback.

Everything goes through an explicit ``MlflowClient`` and run id, so trials in parallel processes
cannot log into each other's runs. The one exception is ``mlflow.pyfunc.log_model``, which reads
MLflow's process-wide tracking URI and takes the logged model's experiment from the active run:
both are set for that call only.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import re
import subprocess
import tempfile
import time
import traceback
import urllib.error
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence
from urllib.parse import urlparse

import mlflow
import numpy as np
import torch
from mlflow.entities import Metric, Param
from mlflow.exceptions import MlflowException
from mlflow.models import ModelSignature
from mlflow.types import Schema, TensorSpec
from mlflow.utils.validation import (MAX_METRICS_PER_BATCH, MAX_PARAM_VAL_LENGTH, MAX_PARAMS_TAGS_PER_BATCH,
                                     MAX_TAG_VAL_LENGTH)
from PIL import Image, ImageDraw, ImageFont

from pipeline.config import PROJECT_ROOT, Params
from pipeline.errors import PipelineError
from pipeline.inference import exception_summary
from pipeline.mlflow_model import (LOADER_MODULE, architecture_params, inference_checkpoint,
                                  logged_model_name)
from pipeline.train.callbacks import Callback, RunContext, Sample, TrainResult
from pipeline.train.checkpoint import load_checkpoint, save_checkpoint

log = logging.getLogger(__name__)

# Unless the user chose otherwise, a lost server costs seconds of retries, not MLflow's ~4 minutes.
HTTP_RETRY_DEFAULTS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2", "MLFLOW_HTTP_REQUEST_TIMEOUT": "10"}
FLUSH_SECONDS = 30.0
MODEL_WEIGHTS = "weights.pt"
LABEL_PIXELS = 14  # text height of the labels on logged image strips
RUN_FILE = "mlflow_run.json"
# Written by the pipeline itself, so they do not make the code "dirty": DVC's lock file and the evaluate stage's outputs.
GIT_STATE_EXCLUDED = ("dvc.lock", "dvc_plots", "results/metrics.json", "results/scores.json",
                      "results/image_scores.csv", "results/leaderboard.md", "results/claims.md", "results/curves.csv")
DIRTY_FILES_SHOWN = 5
# The MLflow UI opens an experiment tagged so in its model-training view, not the GenAI one.
EXPERIMENT_KIND = {"mlflow.experimentKind": "custom_model_development"}


def artifact_root(params: Params) -> Path:
    """``tracking.artifact_location`` as an absolute path (relative ones sit in the project root)."""
    location = params.tracking.artifact_location
    return location if location.is_absolute() else PROJECT_ROOT / location


def tracking_uri(params: Params) -> str:
    """``tracking.uri``, else ``$MLFLOW_TRACKING_URI``, else a SQLite store beside the artifact folder.

    With default params that is ``sqlite:///<project root>/mlflow.db`` next to ``<project root>/mlartifacts``.
    """
    if params.tracking.uri:
        return params.tracking.uri
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    return f"sqlite:///{artifact_root(params).parent / 'mlflow.db'}"


def is_remote(uri: str) -> bool:
    return urlparse(uri).scheme in ("http", "https")


def check_tracking(uri: str, timeout: float = 5.0) -> None:
    """Raise a ``PipelineError`` within ``timeout`` seconds when a tracking server does not answer.

    Local stores (SQLite, files) are created on first use and need no check.
    """
    if not is_remote(uri):
        return
    try:
        with urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=timeout):
            pass
    except urllib.error.HTTPError:
        return  # the server answered, if only with an error status
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise PipelineError(
            f"MLflow tracking server {uri} is unreachable ({reason}); start it, fix tracking.uri / "
            "MLFLOW_TRACKING_URI, or set tracking.enabled=false"
        ) from None


def ensure_experiment(uri: str, name: str, artifact_location: Path | None = None) -> str:
    """The id of experiment ``name``, created (with its SQLite file) when missing.

    ``artifact_location`` only applies to a new experiment in a local store; a server decides its own.
    The experiment is tagged ``EXPERIMENT_KIND``, so the MLflow UI shows its runs as model training.
    """
    client = mlflow.MlflowClient(uri)
    location = artifact_location.as_uri() if artifact_location and not is_remote(uri) else None
    try:
        if uri.startswith("sqlite:///"):
            Path(uri.removeprefix("sqlite:///").split("?")[0]).parent.mkdir(parents=True, exist_ok=True)
        experiment = client.get_experiment_by_name(name)
        if experiment is None:
            try:
                return client.create_experiment(name, artifact_location=location, tags=EXPERIMENT_KIND)
            except MlflowException as exc:
                if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                    raise
                experiment = client.get_experiment_by_name(name)  # created meanwhile by a parallel trial
    except (MlflowException, OSError) as exc:
        raise PipelineError(
            f"MLflow store {uri} could not open experiment '{name}' ({exception_summary(exc)}); "
            "fix tracking.uri / MLFLOW_TRACKING_URI or set tracking.enabled=false"
        ) from None
    if experiment.lifecycle_stage == "deleted":
        raise PipelineError(
            f"MLflow experiment '{name}' is deleted in {uri}; restore it with `mlflow experiments restore "
            f"--experiment-id {experiment.experiment_id}` or set tracking.experiment to a new name"
        )
    _check_artifact_location(experiment, uri)
    _mark_model_training(client, experiment)
    return experiment.experiment_id


def _check_artifact_location(experiment: Any, uri: str) -> None:
    """MLflow stores a local experiment's artifact folder as an absolute path: refuse one whose parent
    folder is gone (the project was moved without its store being told)."""
    location = urlparse(experiment.artifact_location)
    if location.scheme == "file" and not Path(location.path).parent.is_dir():
        raise PipelineError(
            f"MLflow experiment '{experiment.name}' in {uri} keeps its artifacts in {location.path}, whose folder "
            "no longer exists (was the project moved?); move the artifact folder back there, or set "
            "tracking.experiment to a new name to start a new experiment here")


def _mark_model_training(client: mlflow.MlflowClient, experiment: Any) -> None:
    """Tag an experiment made before ``EXPERIMENT_KIND`` existed, unless the user chose another kind."""
    for key, value in EXPERIMENT_KIND.items():
        if key not in experiment.tags:
            try:
                client.set_experiment_tag(experiment.experiment_id, key, value)
            except MlflowException as exc:
                log.warning("could not tag MLflow experiment '%s' as model training (%s)", experiment.name,
                            exception_summary(exc))


def start_run(uri: str, experiment_id: str, run_name: str | None = None, tags: dict[str, str] | None = None,
              parent_run_id: str | None = None) -> str:
    """Create a run (a child of ``parent_run_id`` when given, shown nested in the UI); returns its id."""
    tags = dict(tags or {})
    if parent_run_id:
        tags["mlflow.parentRunId"] = parent_run_id
    return mlflow.MlflowClient(uri).create_run(experiment_id, run_name=run_name, tags=tags).info.run_id


def find_run(uri: str, experiment_id: str, tags: dict[str, str]) -> str | None:
    """The id of the newest run of the experiment carrying every tag in ``tags``, or None."""
    condition = " and ".join(f"tags.`{key}` = '{value}'" for key, value in tags.items())
    runs = mlflow.MlflowClient(uri).search_runs([experiment_id], condition, max_results=1,
                                                order_by=["attributes.start_time DESC"])
    return runs[0].info.run_id if runs else None


def record_error(client: mlflow.MlflowClient, run_id: str, error: BaseException | str) -> None:
    """End ``run_id`` FAILED with the error's one-line summary in its ``error`` tag and, for an
    exception, the traceback in ``error.txt``."""
    if isinstance(error, BaseException):
        client.log_text(run_id, "".join(traceback.format_exception(error)), "error.txt")
        error = f"{type(error).__name__}: {error}"
    client.set_tag(run_id, "error", error[:MAX_TAG_VAL_LENGTH])
    client.set_terminated(run_id, "FAILED")


def flatten_params(tree: dict[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested params as ``{"train.lr": "0.0002", ...}``; lists and empty mappings as JSON.

    Values longer than MLflow's limit are cut and end in ``...``; the full params are logged as
    the ``params.yaml`` artifact.
    """
    flat: dict[str, str] = {}
    for key, value in tree.items():
        name = _mlflow_name(f"{prefix}{key}")
        if isinstance(value, dict) and value:
            flat.update(flatten_params(value, f"{name}."))
            continue
        text = json.dumps(value) if isinstance(value, (dict, list)) else str(value)
        flat[name] = text if len(text) <= MAX_PARAM_VAL_LENGTH else text[: MAX_PARAM_VAL_LENGTH - 3] + "..."
    return flat


def git_tags(folder: Path) -> dict[str, str]:
    """Commit and dirty flag of the code in ``folder``; empty without git or a commit.

    The tree is dirty when a file that is not in ``GIT_STATE_EXCLUDED`` (DVC's lock file and the
    evaluate stage's outputs, which a run itself writes) differs from the commit or is untracked and
    not ignored; ``git.dirty_files`` then names the first ``DIRTY_FILES_SHOWN`` of them.
    """
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=folder, capture_output=True, text=True, timeout=10,
                              check=True).stdout.rstrip()

    try:
        commit = git("rev-parse", "HEAD").strip()
        status = git("status", "--porcelain", "--", ".", *(f":(exclude,top){path}" for path in GIT_STATE_EXCLUDED))
    except (OSError, subprocess.SubprocessError):
        return {}
    tags = {"mlflow.source.git.commit": commit, "git.dirty": str(bool(status)).lower()}
    if status:
        changed = [line[3:] for line in status.splitlines()]
        shown = ", ".join(changed[:DIRTY_FILES_SHOWN]) + (", ..." if len(changed) > DIRTY_FILES_SHOWN else "")
        tags["git.dirty_files"] = shown[:MAX_TAG_VAL_LENGTH]
    return tags


def objective_tags(kind: str, name: str | None = None) -> dict[str, str]:
    """``objective``: the sweep's name for it (``l1``, ``grad2``), else its kind; ``objective.kind``:
    the ``loss.objective`` it trains (``regression``, ``tlw``, ...)."""
    return {"objective": name or kind, "objective.kind": kind}


def manifest_texts(manifests: dict[str, Any]) -> dict[str, str]:
    """Each data manifest (``{"hr": ..., "lr": ...}``) as the JSON text that is logged."""
    return {name: json.dumps(manifest, sort_keys=True, indent=1) for name, manifest in manifests.items()}


def data_tags(texts: dict[str, str]) -> dict[str, str]:
    """``data.<name>.sha256``: the hash of each manifest text from ``manifest_texts``."""
    return {f"data.{name}.sha256": hashlib.sha256(text.encode()).hexdigest() for name, text in texts.items()}


def side_by_side(*images: np.ndarray, gap: int = 4) -> np.ndarray:
    """Equal-height uint8 images left to right, separated by ``gap`` white columns."""
    white = np.full((images[0].shape[0], gap, 3), 255, dtype=np.uint8)
    parts = [part for image in images for part in (white, image)][1:]
    return np.concatenate(parts, axis=1)


def labelled_strip(panels: Sequence[tuple[str, np.ndarray]], zoom: int = 2, gap: int = 4) -> np.ndarray:
    """Equal-height uint8 images side by side, each enlarged ``zoom`` times (nearest neighbour, so pixels
    stay visible) under a white band that names it, e.g. ``[("bicubic", ...), ("SR", ...), ("HR", ...)]``."""
    images = [np.repeat(np.repeat(image, zoom, axis=0), zoom, axis=1) for _, image in panels]
    font = ImageFont.load_default(size=LABEL_PIXELS)
    bands = []
    for (label, _), image in zip(panels, images):
        band = Image.new("RGB", (image.shape[1], LABEL_PIXELS + 6), "white")
        ImageDraw.Draw(band).text((2, 2), label, fill="black", font=font)
        bands.append(np.concatenate([np.asarray(band), image], axis=0))
    return side_by_side(*bands, gap=gap)


def _mlflow_name(key: str) -> str:
    """Metric, param and image names may hold ASCII letters, digits and ``_ - . / space``; the rest becomes ``_``."""
    return re.sub(r"[^A-Za-z0-9_./\- ]", "_", key)


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
        tags = {**git_tags(PROJECT_ROOT), **data_tags(manifests),
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
                params = [Param(key, value)
                          for key, value in flatten_params(ctx.params.model_dump(mode="json")).items()]
                for chunk in _chunks(params, MAX_PARAMS_TAGS_PER_BATCH):
                    self._client.log_batch(self.run_id, params=chunk)
                self._client.log_dict(self.run_id, ctx.params.model_dump(mode="json"), "params.yaml")
                for name, text in manifests.items():
                    self._client.log_text(self.run_id, text, f"data/{name}_manifest.json")
            ctx.run_dir.mkdir(parents=True, exist_ok=True)
            (ctx.run_dir / RUN_FILE).write_text(json.dumps(
                {"run_id": self.run_id, "experiment_id": experiment_id, "tracking_uri": self._uri}))
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
        if record.get("tracking_uri") != self._uri or record.get("experiment_id") != experiment_id:
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
            self._client.log_image(self.run_id, strip, key=_mlflow_name(f"bicubic-sr-hr/{name}"), step=iteration)

    @_tolerant("uploading the best checkpoint")
    def on_checkpoint(self, iteration: int, path: Path, is_best: bool) -> None:
        """Send the buffered metrics first: a run resumed from this checkpoint keeps every point it covers."""
        self._flush()
        if is_best:
            self._client.log_artifact(self.run_id, str(path), "checkpoints")

    @_tolerant("finishing the run")
    def on_end(self, result: TrainResult) -> None:
        self._flush()
        final = [Metric(_mlflow_name(f"final/{key}"), float(value), _now_ms(), result.iterations)
                 for key, value in result.final_metrics.items()]
        if result.best_metric is not None:
            final += [Metric(_mlflow_name(f"best/{self._select_metric}"), float(result.best_metric), _now_ms(),
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
        self._pending += [Metric(_mlflow_name(key), float(value), now, iteration) for key, value in values.items()]

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
