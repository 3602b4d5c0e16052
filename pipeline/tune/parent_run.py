"""The sweep's MLflow parent run, made on the driver before any trial; trials nest under it.

It holds the search space, search algorithm, scheduler and the rest of ``sweep`` as params, the
code version (git commit, dirty flag) and the data hash (``data.<name>.sha256`` of the prepare and
degrade manifests) as tags, and ``params.yaml`` and ``space.json`` as artifacts; at the end
``best.yaml``, ``trials.csv`` and ``best/<objective>/<metric>`` (the best configuration's mean).
``--resume`` continues the same run (its id is kept in the sweep folder by ``pipeline.tune.sweep``).

``settle_trials`` gives each trial's child run its final state once Ray is done with it, since a
trial process can be stopped or lost before it says so itself: FINISHED (tagged
``sweep.stopped_early`` when the scheduler stopped it), or FAILED with the error, created when the
trial failed before its run began.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import mlflow
from mlflow.entities import Param
from mlflow.utils.validation import MAX_PARAMS_TAGS_PER_BATCH

from pipeline.config import CODE_ROOT, Params
from pipeline.data.manifests import read_manifests
from pipeline.errors import exception_summary
from pipeline.redact import redact_data
from pipeline.tracking.store import find_run, flatten_params, record_error, start_run, tracking_uri
from pipeline.tracking.tags import data_tags, git_tags, manifest_texts
from pipeline.tune.results import COMPLETED, FAILED, STOPPED, Selection, TrialRecord
from pipeline.tune.space import SearchSpace
from pipeline.tune.trial import PARENT_TAG, TRIAL_TAG, run_name, trial_tags

log = logging.getLogger(__name__)


class ParentRun:
    """A sweep's parent run in the store at ``uri``."""

    def __init__(self, uri: str, experiment_id: str, run_id: str):
        self.uri = uri
        self.experiment_id = experiment_id
        self.run_id = run_id
        self.client = mlflow.MlflowClient(uri)

    @classmethod
    def start(cls, params: Params, experiment_id: str, space: SearchSpace, algorithms: dict[str, str]) -> "ParentRun":
        """A new parent run; ``algorithms`` names the search algorithm and scheduler."""
        uri = tracking_uri(params)
        manifests = manifest_texts(read_manifests(Path(params.data_dir)))
        tags = {**git_tags(CODE_ROOT), **data_tags(manifests), "sweep.name": params.sweep.name}
        run_id = start_run(uri, experiment_id, f"sweep-{params.sweep.name}", tags)
        run = cls(uri, experiment_id, run_id)
        flat = [Param(key, value) for key, value in
                flatten_params(redact_data({"sweep": params.sweep.model_dump(mode="json"), **algorithms})).items()]
        for start in range(0, len(flat), MAX_PARAMS_TAGS_PER_BATCH):
            run.client.log_batch(run_id, params=flat[start:start + MAX_PARAMS_TAGS_PER_BATCH])
        run.client.log_dict(run_id, redact_data(params.model_dump(mode="json")), "params.yaml")
        run.client.log_dict(run_id, space.describe(), "space.json")
        for name, text in manifests.items():
            run.client.log_text(run_id, text, f"data/{name}_manifest.json")
        return run

    def reopen(self) -> None:
        """Mark a resumed sweep's run as running again."""
        self.client.update_run(self.run_id, status="RUNNING")

    def settle_trials(self, records: list[TrialRecord], sweep_name: str, base_seed: int) -> None:
        """Give every trial's child run its final state; sets each record's ``run_id``. A trial that failed
        before its run began gets a run named as ``run_name`` names it (its training seed is ``base_seed`` + index)."""
        for record in records:
            run_id = find_run(self.uri, self.experiment_id, {TRIAL_TAG: record.trial_id, PARENT_TAG: self.run_id})
            if run_id is None and record.status == FAILED:
                run_id = start_run(self.uri, self.experiment_id, run_name(record.choice, base_seed + record.seed),
                                   trial_tags(sweep_name, record.trial_id, record.choice), self.run_id)
            record.run_id = run_id
            if run_id is None:
                continue
            status = self.client.get_run(run_id).info.status
            if record.status == FAILED and status != "FAILED":
                record_error(self.client, run_id, record.error or "the trial failed")
            elif record.status == STOPPED:
                self.client.set_tag(run_id, "sweep.stopped_early", "true")
                self.client.set_terminated(run_id, "FINISHED")
            elif record.status == COMPLETED and status != "FINISHED":
                self.client.set_terminated(run_id, "FINISHED")

    def finish(self, selections: dict[str, Selection], files: list[Path], metric: str, counts: dict[str, int]) -> None:
        for path in files:
            self.client.log_artifact(self.run_id, str(path))
        for name, selection in selections.items():
            self.client.log_metric(self.run_id, f"best/{name}/{metric}", selection.mean)
        for name, count in counts.items():
            self.client.log_metric(self.run_id, f"trials/{name}", count)
        self.client.set_terminated(self.run_id, "FINISHED")

    def fail(self, error: BaseException) -> None:
        """End the run FAILED with the error (KILLED on Ctrl-C); a tracking failure here only warns."""
        try:
            if isinstance(error, KeyboardInterrupt):
                self.client.set_terminated(self.run_id, "KILLED")
            else:
                record_error(self.client, self.run_id, error)
        except Exception as exc:  # noqa: BLE001 - the sweep's own error matters more
            log.warning("could not mark the sweep's MLflow run %s as failed (%s)", self.run_id,
                        exception_summary(exc))


def describe_algorithms(search: str, scheduler: str) -> dict[str, Any]:
    """The names logged as the parent run's ``search_algorithm`` and ``scheduler`` params."""
    return {"search_algorithm": {"random": "BasicVariantGenerator (random)", "grid": "BasicVariantGenerator (grid)",
                                 "optuna": "OptunaSearch (TPE)"}[search],
            "scheduler": {"fifo": "FIFOScheduler", "asha": "ASHAScheduler",
                          "pbt": "PopulationBasedTraining"}[scheduler]}
