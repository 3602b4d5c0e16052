"""The sweep's MLflow store as the report uses it: run links, metric histories, report artifacts.

The report must never be lost to tracking: an unreachable server, a missing local store or a
failing call becomes one warning, and the files in ``results/`` are written all the same.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlparse

import mlflow
from mlflow.entities import Metric
from mlflow.utils.validation import MAX_METRICS_PER_BATCH

from pipeline.errors import PipelineError, exception_summary
from pipeline.tracking.store import HTTP_RETRY_DEFAULTS, check_tracking, is_remote, mlflow_name

log = logging.getLogger(__name__)

HISTORY_PREFIXES = ("train/", "val/")
SHORT_ID = 8  # characters of a run id shown; MLflow's UI shows runs by name, the full ids are in info.json
DESCRIPTION_TAG = "mlflow.note.content"  # what the MLflow UI shows as a run's description
# MLflow 3.17's UI opens an experiment's plain URL in its GenAI view whatever the experiment's
# mlflow.experimentKind tag says; this URL query opens the model-training view.
MODEL_TRAINING_VIEW = "workflowType=machine_learning"
LOCAL_UI = "http://127.0.0.1:5000"  # where `mlflow ui` serves by default
T = TypeVar("T")


def run_link(server: str, experiment_id: str, run_id: str) -> str:
    """Markdown link to a run's page in the MLflow UI of ``server``, in the model-training view."""
    return (f"[{run_id[:SHORT_ID]}]({server.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}"
            f"?{MODEL_TRAINING_VIEW})")


def experiment_link(server: str, experiment_id: str) -> str:
    """The experiment's runs in the MLflow UI of ``server``, in the model-training view."""
    return f"{server.rstrip('/')}/#/experiments/{experiment_id}?{MODEL_TRAINING_VIEW}"


def portable_uri(uri: str, root: Path) -> str | None:
    """``uri`` as every reader of a report can use it, or ``None``.

    A server's ``http(s)`` URL is kept; a local SQLite or file store inside ``root`` is named relative
    to it (``sqlite:///mlflow.db``, as ``mlflow ui`` takes it from the project folder). A local store
    elsewhere is a path on one machine, and a database URI may hold credentials: both give ``None``.
    """
    if is_remote(uri):
        return uri
    scheme = urlparse(uri).scheme
    if scheme == "sqlite" and uri.startswith("sqlite:///"):
        prefix, location = "sqlite:///", uri.removeprefix("sqlite:///")
    elif scheme in ("", "file"):
        prefix, location = "", urlparse(uri).path if scheme == "file" else uri
    else:
        return None
    path = Path(location) if Path(location).is_absolute() else Path.cwd() / location
    try:
        return prefix + path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return None


def store_kind(uri: str) -> str:
    """``SQLite``, ``file`` or the URI's scheme: what a report says of a store it does not name."""
    scheme = urlparse(uri).scheme
    return {"sqlite": "SQLite", "": "file", "file": "file"}.get(scheme, scheme)


class RunStore:
    """MLflow at ``uri`` (an http(s) server, ``sqlite:///...`` or a file store); ``problem`` says why
    it cannot be used, ``None`` when it can."""

    def __init__(self, uri: str):
        self.uri = uri
        self.problem = self._probe()
        self._client = mlflow.MlflowClient(uri) if self.problem is None else None
        self._experiments: dict[str, str | None] = {}

    def _probe(self) -> str | None:
        parsed = urlparse(self.uri)
        if is_remote(self.uri):
            for name, value in HTTP_RETRY_DEFAULTS.items():
                os.environ.setdefault(name, value)
            try:
                check_tracking(self.uri)
            except PipelineError as exc:
                return str(exc)
        elif parsed.scheme == "sqlite" and not Path(parsed.path).is_file():
            return f"the MLflow store {self.uri} does not exist (was the sweep run with tracking enabled?)"
        return None

    @property
    def usable(self) -> bool:
        return self.problem is None

    def link(self, run_id: str, experiment_id: str | None = None) -> str:
        """Markdown for ``run_id``: a link into the server's UI (its experiment asked from the server
        when not given), else the id to look up in ``mlflow ui``."""
        if not is_remote(self.uri):
            return f"`{run_id[:SHORT_ID]}`"
        experiment = experiment_id or self.experiment_id(run_id)
        return f"`{run_id[:SHORT_ID]}`" if experiment is None else run_link(self.uri, experiment, run_id)

    def experiment_id(self, run_id: str) -> str | None:
        if run_id not in self._experiments:
            run = self._call(f"reading run {run_id}", lambda client: client.get_run(run_id))
            self._experiments[run_id] = run.info.experiment_id if run is not None else None
        return self._experiments[run_id]

    def history(self, run_id: str) -> list[tuple[str, int, float]]:
        """``(metric, step, value)`` of every ``train/*`` and ``val/*`` metric logged to ``run_id``."""
        def read(client: mlflow.MlflowClient) -> list[tuple[str, int, float]]:
            keys = sorted(key for key in client.get_run(run_id).data.metrics if key.startswith(HISTORY_PREFIXES))
            return [(key, point.step, point.value) for key in keys for point in client.get_metric_history(run_id, key)]

        return self._call(f"reading the metric history of run {run_id}", read) or []

    def log_files(self, run_id: str, files: list[Path], artifact_path: str) -> bool:
        """Upload ``files`` to ``run_id`` under ``artifact_path``; False (with a warning) when that failed."""
        def upload(client: mlflow.MlflowClient) -> bool:
            for path in files:
                client.log_artifact(run_id, str(path), artifact_path)
            return True

        return bool(self._call(f"logging the report to run {run_id}", upload))

    def log_metrics(self, run_id: str, metrics: dict[str, float], to_models: bool = False) -> bool:
        """Log ``metrics`` (name -> value, step 0) to ``run_id`` and, with ``to_models``, to every model the run
        logged too (MLflow's logged models then show the scores); False (with a warning) when that failed.
        The names are made valid for MLflow (``mlflow_name``; the results' names already are), since one
        name it refuses drops the whole batch."""
        def send(client: mlflow.MlflowClient) -> bool:
            now = int(time.time() * 1000)
            models = [None]
            if to_models:
                experiment = client.get_run(run_id).info.experiment_id
                found = client.search_logged_models(experiment_ids=[experiment],
                                                    filter_string=f"source_run_id = '{run_id}'")
                models = [model.model_id for model in found] or [None]
            batch = [Metric(mlflow_name(name), float(value), now, 0, model_id=model) for model in models
                     for name, value in metrics.items()]
            for start in range(0, len(batch), MAX_METRICS_PER_BATCH):
                client.log_batch(run_id, metrics=batch[start:start + MAX_METRICS_PER_BATCH])
            return True

        return bool(self._call(f"logging benchmark metrics to run {run_id}", send))

    def describe(self, run_id: str, text: str) -> bool:
        """Set ``text`` (markdown) as the run's description; False (with a warning) when that failed."""
        def send(client: mlflow.MlflowClient) -> bool:
            client.set_tag(run_id, DESCRIPTION_TAG, text)
            return True

        return bool(self._call(f"setting the description of run {run_id}", send))

    def _call(self, action: str, request: Callable[[mlflow.MlflowClient], T]) -> T | None:
        if self._client is None:
            return None
        try:
            return request(self._client)
        except Exception as exc:  # noqa: BLE001 - tracking must never cost the report
            log.warning("MLflow failed while %s (%s); the report files in results/ are kept", action,
                        exception_summary(exc))
            return None
