"""The tags of a training run: the code's git state, the objective it trains, and its data manifests."""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path
from typing import Any

from mlflow.utils.validation import MAX_TAG_VAL_LENGTH

# Written by the pipeline itself, so they do not make the code "dirty": DVC's lock file and the evaluate stage's outputs.
GIT_STATE_EXCLUDED = ("dvc.lock", "dvc_plots", "results/metrics.json", "results/scores.json",
                      "results/image_scores.csv", "results/summary.md", "results/leaderboard.md", "results/claims.md",
                      "results/curves.csv", "results/verdicts.json")
DIRTY_FILES_SHOWN = 5


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
