"""Matplotlib figures without pyplot: no global state, the Agg canvas, PNG files written atomically."""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

from matplotlib.figure import Figure

DPI = 120


def new_figure(width: float, height: float) -> Figure:
    """A figure of ``width x height`` inches with a constrained layout."""
    return Figure(figsize=(width, height), dpi=DPI, layout="constrained")


def save_figure(figure: Figure, path: Path) -> Path:
    """Render ``figure`` to the PNG ``path`` (temp file + rename, so a crash leaves no half image)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".png")
    os.close(fd)
    try:
        figure.savefig(tmp, format="png", dpi=DPI)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def file_stem(*parts: str) -> str:
    """``parts`` joined by ``_`` with anything but letters, digits, ``.``, ``_`` and ``-`` replaced by ``-``."""
    return "_".join(re.sub(r"[^A-Za-z0-9._-]+", "-", part) for part in parts)
