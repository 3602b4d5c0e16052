"""The sweep folder's state, ``<sweep.storage_path>/<sweep.name>/srloss_sweep.json`` (``STATE_FILE``).

Every sweep writes this marker when it starts (the MLflow parent run's id, the experiment, the
tracking URI, the digest of ``params.sweep`` and the sweep's random id) and again with
``finished: true`` when its outputs are written. It decides three things before Ray starts: whether
``--resume auto`` continues the folder's sweep (``resume_wanted``), whether a new sweep may replace
the folder (only one a sweep made: it holds the marker), and whether ``--resume`` finds a sweep whose
Tune state is whole (``prepare_sweep_folder``).
"""

from __future__ import annotations

import json
import logging
from typing import Any

from pipeline.errors import PipelineError
from pipeline.tune.storage import Storage

log = logging.getLogger(__name__)

STATE_FILE = "srloss_sweep.json"


def resume_wanted(folder: Storage, resume: bool | str, digest: str) -> bool:
    """``resume`` as a yes or no: ``auto`` is yes when ``folder`` holds an unfinished sweep of the
    same ``params.sweep`` (``digest``) that Tune can restore (what a requeued SLURM job or a
    ``dvc repro`` after an interruption finds)."""
    if resume != "auto":
        return resume in (True, "always")
    from ray import tune

    state = read_state(folder)
    unfinished = state is not None and not state.get("finished") and state.get("sweep_digest") == digest
    if unfinished and tune.Tuner.can_restore(folder.path, storage_filesystem=folder.filesystem):
        log.info("resuming the unfinished sweep in %s", folder.location)
        return True
    return False


def read_state(folder: Storage) -> dict[str, Any] | None:
    """The sweep folder's ``STATE_FILE``, None when there is none."""
    return json.loads(folder.read_bytes(STATE_FILE)) if folder.exists(STATE_FILE) else None


def write_state(folder: Storage, state: dict[str, Any]) -> None:
    folder.write_bytes(STATE_FILE, json.dumps(state, indent=1).encode())


def prepare_sweep_folder(folder: Storage, resume: bool) -> dict[str, Any]:
    """Check (resume) or clear (new sweep) the sweep folder; the saved state of a resumed sweep."""
    from ray import tune

    if resume:
        if not folder.exists() or not tune.Tuner.can_restore(folder.path, storage_filesystem=folder.filesystem):
            raise PipelineError(f"--resume: there is no sweep to resume in '{folder.location}'; run the sweep without "
                                "--resume (or set sweep.storage_path/sweep.name to the interrupted sweep's)")
        for name in folder.files():
            if "/" not in name and name.startswith("experiment_state") and not _is_json(folder.read_bytes(name)):
                raise PipelineError(f"--resume: Ray Tune's run state '{folder.location}/{name}' is damaged (the sweep "
                                    "was stopped while writing it); run the sweep again without --resume")
        return read_state(folder) or {}
    if folder.exists():
        if not folder.exists(STATE_FILE):
            raise PipelineError(f"'{folder.location}' exists but is not a sweep folder (it lacks {STATE_FILE}, which "
                                "every sweep writes), so it is not replaced; set sweep.name to a new name or move it away")
        log.info("replacing the earlier sweep folder %s (run with --resume to continue it instead)", folder.location)
        folder.delete()
    return {}


def _is_json(content: bytes) -> bool:
    try:
        json.loads(content.decode())
    except (UnicodeDecodeError, json.JSONDecodeError):
        return False
    return True
