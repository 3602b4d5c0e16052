"""One sweep at a time per project outputs: ``<results_dir>/.sweep.lock``.

A sweep writes ``<results_dir>/sweep/``, ``<models_dir>/`` and its storage folder; a second sweep
started meanwhile (a second ``dvc repro``, a requeued job whose first run lives on) would replace
the first one's folder under it. The lock is an exclusive ``flock`` the kernel drops when its
holder dies (even by ``kill -9``), so a stale lock never blocks; the file holds the holder's pid.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from pipeline.errors import PipelineError

LOCK_FILE = ".sweep.lock"


@contextlib.contextmanager
def sweep_lock(results_dir: Path) -> Iterator[None]:
    """Hold the sweep lock of ``results_dir`` inside; a second holder is refused at once."""
    path = Path(results_dir) / LOCK_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            raise PipelineError(f"another sweep (pid {holder}) is writing '{results_dir}'; wait for it to end, stop "
                                f"it with `kill -TERM {holder}` (it saves its trials for --resume), or set "
                                "results_dir and models_dir to other folders") from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        yield  # no LOCK_UN: closing the file releases the lock, and a forked child that unwinds this
        # frame (a library's fork without exec) must not release it for the sweep (its close does not)
