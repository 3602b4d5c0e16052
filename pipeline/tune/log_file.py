"""Full logs in a file: the sweep driver's and each trial's, while the console stays short."""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path
from typing import Iterator

NON_PROPAGATING = ("ray", "mlflow")  # loggers with handlers of their own that do not pass records to the root
FILE_ONLY = logging.INFO - 5  # the level of records meant for the log file only (the console shows them otherwise)
logging.addLevelName(FILE_ONLY, "PROGRESS")


@contextlib.contextmanager
def log_to_file(path: Path) -> Iterator[Path]:
    """Copy every log record of this process (``FILE_ONLY``, INFO and above, Ray's and MLflow's included) to
    ``path``; the handlers already there (the console) keep the level they showed before."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, mode="w")
    handler.setLevel(FILE_ONLY)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    saved = root.level
    quiet = [other for other in root.handlers if other.level == logging.NOTSET]
    for other in quiet:
        other.setLevel(saved)
    sources = (root, *map(logging.getLogger, NON_PROPAGATING))
    for source in sources:
        source.addHandler(handler)
    root.setLevel(min(saved, FILE_ONLY))
    try:
        yield path
    finally:
        for source in sources:
            source.removeHandler(handler)
        root.setLevel(saved)
        for other in quiet:
            other.setLevel(logging.NOTSET)
        handler.close()
