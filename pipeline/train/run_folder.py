"""A run folder's guards: one training at a time, finished checkpoints never replaced by accident,
temporary files of killed writes removed."""

from __future__ import annotations

import contextlib
import fcntl
import logging
from collections.abc import Iterator
from pathlib import Path

from pipeline.errors import PipelineError

log = logging.getLogger(__name__)

LOCK_FILE = ".lock"
CHECKPOINT_NAMES = ("last.pt", "best.pt")


@contextlib.contextmanager
def run_folder_lock(run_dir: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``<run_dir>/.lock`` inside; a second holder is refused at once.

    The kernel drops the lock when its process dies (even by ``kill -9``), so a stale lock cannot block.
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    with open(run_dir / LOCK_FILE, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise PipelineError(f"run folder '{run_dir}' is in use by another training; wait for it to finish "
                                "or pass another --run-dir") from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def refuse_finished_run(run_dir: Path) -> None:
    """Raise when ``run_dir`` already holds checkpoints that a fresh run would replace."""
    found = [name for name in CHECKPOINT_NAMES if (Path(run_dir) / "checkpoints" / name).is_file()]
    if found:
        raise PipelineError(f"run folder '{run_dir}' already holds {' and '.join(found)} of an earlier run; pass "
                            "--resume to continue it, --overwrite to replace it, or another --run-dir")


def remove_orphaned_temp_files(checkpoints: Path) -> list[Path]:
    """Delete ``.<name>.pt.*.tmp`` files left by checkpoint writes that were killed; returns them.

    Call it only while holding the run folder's lock: then no write of this folder is in flight.
    """
    orphans = sorted(Path(checkpoints).glob(".*.pt.*.tmp"))
    for path in orphans:
        path.unlink(missing_ok=True)
    if orphans:
        log.info("removed %d temporary file(s) of interrupted checkpoint writes in %s", len(orphans), checkpoints)
    return orphans
