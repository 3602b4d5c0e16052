"""Matplotlib figures without pyplot: no global state, the Agg canvas, PNG files written atomically, and
one fixed colour per objective in every plot (``objective_colour``).

The default study's objectives have a colour of their own (Okabe & Ito's colour-blind-safe palette,
then Tableau's); any other name gets one from Tableau's 20 colours chosen by a CRC-32 of the name, so
it is the same in every plot and every run. A row of another decode (``fine_grained@anchor``) gets its
own colour too; bicubic is black.
"""

from __future__ import annotations

import os
import re
import tempfile
import zlib
from pathlib import Path

from matplotlib import colormaps
from matplotlib.colors import to_hex
from matplotlib.figure import Figure

DPI = 120
COLOURS = {"bicubic": "#000000", "l1": "#0072b2", "charbonnier": "#56b4e9", "grad2": "#009e73", "tlw": "#e69f00",
           "fine_grained": "#cc79a7", "fine_grained@anchor": "#8c564b", "cs": "#d55e00", "fcs": "#7f3c8d"}
OTHER_COLOURS = [to_hex(colour) for colour in colormaps["tab20"].colors]


def objective_colour(name: str) -> str:
    """The colour of ``name`` in every plot (hex)."""
    return COLOURS.get(name) or OTHER_COLOURS[zlib.crc32(name.encode()) % len(OTHER_COLOURS)]


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
