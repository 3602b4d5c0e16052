"""The MLflow store: where runs are stored, a fail-fast check of the server, experiments and runs.

Everything goes through an explicit ``MlflowClient`` and run id, so trials in parallel processes
cannot log into each other's runs.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import re
import traceback
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse, urlsplit, urlunsplit

import mlflow
from mlflow.exceptions import MlflowException
from mlflow.utils.validation import MAX_PARAM_VAL_LENGTH, MAX_TAG_VAL_LENGTH

from pipeline.config import Params
from pipeline.errors import PipelineError, exception_summary
from pipeline.redact import redact_uri

log = logging.getLogger(__name__)

# Unless the user chose otherwise, a lost server costs seconds of retries, not MLflow's ~4 minutes.
HTTP_RETRY_DEFAULTS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2", "MLFLOW_HTTP_REQUEST_TIMEOUT": "10"}
# The MLflow UI opens an experiment tagged so in its model-training view, not the GenAI one.
EXPERIMENT_KIND = {"mlflow.experimentKind": "custom_model_development"}


def artifact_root(params: Params) -> Path:
    """``tracking.artifact_location`` as an absolute path (``load_params`` resolves it against the project folder;
    a relative one, in params built otherwise, against the working directory)."""
    location = params.tracking.artifact_location
    return location if location.is_absolute() else Path.cwd() / location


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
        with urllib.request.urlopen(_health_request(uri), timeout=timeout):
            pass
    except urllib.error.HTTPError:
        return  # the server answered, if only with an error status
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise PipelineError(
            f"MLflow tracking server {redact_uri(uri)} is unreachable ({reason}); start it, fix tracking.uri / "
            "MLFLOW_TRACKING_URI, or set tracking.enabled=false"
        ) from None


def _health_request(uri: str) -> urllib.request.Request:
    """``GET <uri>/health``, with the URI's ``user:password@`` sent as HTTP basic auth (as MLflow's client
    sends them): urllib would take ``user:password@host`` for the host name."""
    parts = urlsplit(uri)
    host = parts.netloc.rsplit("@", 1)[-1]
    request = urllib.request.Request(urlunsplit((parts.scheme, host, f"{parts.path.rstrip('/')}/health", "", "")))
    if parts.username is not None:
        credentials = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
        request.add_header("Authorization", f"Basic {base64.b64encode(credentials.encode()).decode()}")
    return request


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
    _check_artifact_location(experiment, uri, location)
    _mark_model_training(client, experiment)
    return experiment.experiment_id


def _check_artifact_location(experiment: Any, uri: str, expected: str | None) -> None:
    """MLflow stores a local experiment's artifact folder as an absolute path: refuse one whose parent
    folder is gone (the project was moved without its store being told), and one other than the
    project's ``expected`` folder (a store copied with its project would write into the original)."""
    location = urlparse(experiment.artifact_location)
    if location.scheme != "file":
        return
    if not Path(location.path).parent.is_dir():
        raise PipelineError(
            f"MLflow experiment '{experiment.name}' in {uri} keeps its artifacts in {location.path}, whose folder "
            "no longer exists (was the project moved?); move the artifact folder back there, or set "
            "tracking.experiment to a new name to start a new experiment here")
    if expected is not None and Path(location.path) != Path(urlparse(expected).path):
        raise PipelineError(
            f"MLflow experiment '{experiment.name}' in {uri} keeps its artifacts in {location.path}, not in this "
            f"project's {urlparse(expected).path} (was the store copied from another project?); set "
            "tracking.experiment to a new name to start an experiment here, or tracking.artifact_location to "
            "that folder to share it")


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
        name = mlflow_name(f"{prefix}{key}")
        if isinstance(value, dict) and value:
            flat.update(flatten_params(value, f"{name}."))
            continue
        text = json.dumps(value) if isinstance(value, (dict, list)) else str(value)
        flat[name] = text if len(text) <= MAX_PARAM_VAL_LENGTH else text[: MAX_PARAM_VAL_LENGTH - 3] + "..."
    return flat


def mlflow_name(key: str) -> str:
    """Metric, param and image names may hold ASCII letters, digits and ``_ - . / space``: a ``+`` (the
    self-ensemble rows, ``l1+``) becomes ``-plus``, anything else outside the set ``_``."""
    return re.sub(r"[^A-Za-z0-9_./\- ]", "_", key.replace("+", "-plus"))
