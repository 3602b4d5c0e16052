"""Every score of every image: ``results/image_scores.csv`` and the paired arrays the verdicts need.

One row per benchmark, scale, method (``bicubic`` or an objective), training seed (empty for
bicubic) and image, with one column per metric. The per-model means in ``metrics.json`` are the
means of these rows over a benchmark's images.
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from pathlib import Path

import numpy as np

from pipeline.report.metrics_file import write_text

Key = tuple[str, int, str]


class PerImageScores:
    """Scores keyed by (benchmark, scale, method), then seed (None for bicubic), then image name."""

    def __init__(self) -> None:
        self.scores: dict[Key, dict[int | None, dict[str, dict[str, float]]]] = defaultdict(dict)

    def add(self, benchmark: str, scale: int, method: str, seed: int | None, image: str,
            scores: dict[str, float]) -> None:
        self.scores[benchmark, scale, method].setdefault(seed, {})[image] = dict(scores)

    def methods(self, benchmark: str, scale: int) -> list[str]:
        return sorted(method for (b, s, method) in self.scores if (b, s) == (benchmark, scale))

    def seeds(self, benchmark: str, scale: int, method: str) -> list[int | None]:
        """The seeds of ``method`` (none for a method without scores, which this does not add to ``methods``)."""
        return sorted(self.scores.get((benchmark, scale, method), {}), key=lambda seed: -1 if seed is None else seed)

    def has(self, benchmark: str, scale: int, method: str, metric: str) -> bool:
        by_seed = self.scores.get((benchmark, scale, method), {})
        return bool(by_seed) and all(metric in scores for images in by_seed.values() for scores in images.values())

    def matrix(self, benchmark: str, scale: int, method: str, metric: str,
               seeds: list[int | None] | None = None) -> np.ndarray:
        """``images x seeds`` values of ``metric`` (images sorted by name; ``seeds`` default: all)."""
        by_seed = self.scores[benchmark, scale, method]
        chosen = self.seeds(benchmark, scale, method) if seeds is None else seeds
        images = sorted(by_seed[chosen[0]])
        return np.array([[by_seed[seed][image][metric] for seed in chosen] for image in images], dtype=np.float64)

    def paired(self, benchmark: str, scale: int, method: str, baseline: str,
               metric: str) -> tuple[np.ndarray, np.ndarray] | None:
        """``(method, baseline)`` arrays on the same images and seeds, or None when they share no seed.

        A baseline trained without seeds (bicubic) is one column, compared with every seed of ``method``.
        """
        mine = self.seeds(benchmark, scale, method)
        theirs = self.seeds(benchmark, scale, baseline)
        if theirs == [None]:
            return self.matrix(benchmark, scale, method, metric), self.matrix(benchmark, scale, baseline, metric)
        shared = [seed for seed in mine if seed in theirs]
        if not shared:
            return None
        return (self.matrix(benchmark, scale, method, metric, shared),
                self.matrix(benchmark, scale, baseline, metric, shared))

    def write_csv(self, path: Path) -> None:
        """``benchmark,scale,method,seed,image,<metrics...>``, sorted; atomically."""
        metrics = sorted({metric for by_seed in self.scores.values() for images in by_seed.values()
                          for scores in images.values() for metric in scores})
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["benchmark", "scale", "method", "seed", "image", *metrics])
        for benchmark, scale, method in sorted(self.scores):
            for seed in self.seeds(benchmark, scale, method):
                for image, scores in sorted(self.scores[benchmark, scale, method][seed].items()):
                    writer.writerow([benchmark, scale, method, "" if seed is None else seed, image,
                                     *(repr(float(scores[m])) if m in scores else "" for m in metrics)])
        write_text(path, out.getvalue())
