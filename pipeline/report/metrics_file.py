"""The evaluation's numbers in two files.

``results/scores.json`` (the tree the leaderboard and plots read): benchmark -> scale (``"x2"``) ->
objective -> metric -> ``{mean, std, n}``.

A metric's value for one model is its mean over the benchmark's images; ``mean`` and ``std``
are then taken over the ``n`` models of an objective (one per seed when the sweep repeated its
best configuration). ``std`` is the sample standard deviation (``ddof = 1``), ``null`` when
``n = 1``. A metric that could not be computed is ``{"unavailable": "<reason>"}`` instead.
Keys are ordered: benchmarks and scales ascending, the bicubic baseline first and then the
objectives by name, metrics as in ``METRICS``.

``results/metrics.json`` (for ``dvc metrics show/diff`` and ``dvc exp show``): one flat number per
column, ``<benchmark>/<scale>/<objective>/<metric>`` -> the mean over seeds, for the quality metrics
in ``DVC_METRICS`` that could be computed (the reasons for the others are in the leaderboard), e.g.
``"Set5/x2/grad2/psnr": 31.254``.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Any

BASELINE = "bicubic"
METRICS = ("psnr", "ssim", "lpips", "fid", "decode_ms_per_mp")
HIGHER_IS_BETTER = {"psnr": True, "ssim": True, "lpips": False, "fid": False, "decode_ms_per_mp": False,
                    "haarpsi": True, "mdsi": False, "ms_gmsd": False}  # the last three: pipeline.metrics.perceptual
DVC_METRICS = {"psnr": 3, "ssim": 4, "lpips": 4, "fid": 2}  # metric -> decimals kept in metrics.json


def scale_key(scale: int) -> str:
    return f"x{scale}"


def objective_order(name: str) -> tuple[bool, str]:
    """Sort key: the bicubic baseline first, then objectives by name."""
    return name != BASELINE, name


class ScoreTable:
    """Per-model metric values collected during evaluation, keyed by benchmark, scale and objective."""

    def __init__(self) -> None:
        self.values: dict[tuple[str, int, str], dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))

    def add(self, benchmark: str, scale: int, objective: str, scores: dict[str, float]) -> None:
        """Record one model's scores (each a mean over the benchmark's images)."""
        for metric, value in scores.items():
            self.values[benchmark, scale, objective][metric].append(float(value))

    def to_tree(self, unavailable: dict[str, str]) -> dict[str, Any]:
        """The ordered nested mapping written to ``metrics.json``; ``unavailable`` maps a metric to its reason."""
        tree: dict[str, Any] = {}
        for benchmark, scale, objective in sorted(self.values, key=lambda k: (k[0], k[1], objective_order(k[2]))):
            measured = self.values[benchmark, scale, objective]
            entry = {metric: summarize(measured[metric]) for metric in METRICS if metric in measured}
            entry.update({metric: {"unavailable": reason} for metric, reason in unavailable.items()})
            ordered = {metric: entry[metric] for metric in METRICS if metric in entry}
            tree.setdefault(benchmark, {}).setdefault(scale_key(scale), {})[objective] = ordered
        return tree


def flat_metrics(tree: dict[str, Any]) -> dict[str, float]:
    """``metrics.json``: ``{"<benchmark>/<scale>/<objective>/<metric>": mean}`` from the scores tree, in its order."""
    return {f"{benchmark}/{scale}/{objective}/{metric}": round(entry[metric]["mean"], digits)
            for benchmark, scales in tree.items() for scale, objectives in scales.items()
            for objective, entry in objectives.items()
            for metric, digits in DVC_METRICS.items() if "mean" in entry.get(metric, {})}


def summarize(values: list[float]) -> dict[str, float | int | None]:
    """``{"mean", "std" (sample, None for one value), "n"}`` of per-model values."""
    n = len(values)
    mean = math.fsum(values) / n
    std = math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else None
    return {"mean": mean, "std": std, "n": n}


def write_metrics(path: Path, tree: dict[str, Any]) -> None:
    """Write ``tree`` (or flat metrics) as indented JSON, atomically (temp file + rename), keeping its key order."""
    write_text(path, json.dumps(tree, indent=2, allow_nan=False) + "\n")


def read_metrics(path: Path) -> dict[str, Any]:
    return json.loads(Path(path).read_text())


def write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically, creating its folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
