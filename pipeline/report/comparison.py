"""Comparison images: crops of HR, bicubic and every objective's output where the objectives differ most,
each with its own crop PSNR and an error map.

The crops are chosen from the outputs themselves: the disagreement of a pixel is the standard
deviation of its grey level (the RGB average) over the trained objectives' outputs (over every
method when fewer than two objectives were trained), and a window's score is its mean
disagreement. ``CROPS`` windows of ``size x size`` are taken greedily, best first, over every image of
the benchmark, a window never overlapping one already taken in the same image (ties: the first
image, then row-major order). Each crop is a pair of rows: the crops themselves (captioned with the
PSNR of the crop, Y channel) and the absolute error ``|SR - HR|`` (grey-level mean), on one colour
scale for the whole crop so the panels compare.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pipeline.metrics.reference import psnr
from pipeline.report.figures import new_figure, save_figure
from pipeline.report.metrics_file import BASELINE

PANEL_INCHES = 1.7
CROPS = 3


@dataclass(frozen=True)
class Panel:
    """One image of the comparison, the caption under its label, and its error map (None for HR)."""

    label: str
    image: np.ndarray
    caption: str
    error: np.ndarray | None


@dataclass(frozen=True)
class Crop:
    """A ``side x side`` window at ``(top, left)`` of image number ``index``, and its disagreement score."""

    index: int
    top: int
    left: int
    side: int
    score: float

    @property
    def window(self) -> tuple[slice, slice]:
        return np.s_[self.top:self.top + self.side, self.left:self.left + self.side]


@dataclass
class Comparison:
    """The images of one benchmark at one scale: their HR images and each method's outputs (one per
    image, in the same order), and the training seed of each model (``seeds``; bicubic has none)."""

    benchmark: str
    scale: int
    images: list[str]
    hrs: list[np.ndarray]
    outputs: dict[str, list[np.ndarray]] = field(default_factory=dict)
    seeds: dict[str, int] = field(default_factory=dict)

    def panels(self, crop: Crop) -> list[Panel]:
        """HR, then the outputs in insertion order (bicubic first), cropped; a model's label names its seed."""
        hr = self.hrs[crop.index][crop.window]
        panels = [Panel("HR", hr, "ground truth", None)]
        for name, outputs in self.outputs.items():
            sr = outputs[crop.index][crop.window]
            label = f"{name}, seed {self.seeds[name]}" if name in self.seeds else name
            error = np.abs(sr.astype(np.float64) - hr.astype(np.float64)).mean(axis=2)
            panels.append(Panel(label, sr, f"crop PSNR {psnr(sr, hr, 0, True):.2f} dB", error))
        return panels

    def crops(self, size: int, count: int = CROPS) -> list[Crop]:
        """The ``count`` windows where the objectives' outputs differ most (see the module doc)."""
        trained = [name for name in self.outputs if name != BASELINE]
        methods = trained if len(trained) > 1 else list(self.outputs)
        candidates = []
        for index, hr in enumerate(self.hrs):
            side = min(size, *hr.shape[:2])
            grey = np.stack([np.asarray(self.outputs[name][index], dtype=np.float64).mean(axis=2) for name in methods])
            scores = _window_sums(grey.std(axis=0), side) / (side * side)
            candidates.append((index, side, scores))
        return pick_windows(candidates, count)

    def save(self, crop_size: int, path: Path) -> Path:
        """Every crop as two rows (images, error maps), HR then the outputs in insertion order."""
        crops = self.crops(crop_size)
        title = (f"{self.benchmark} x{self.scale}: the {len(crops)} crop(s) where the objectives differ most\n"
                 "each with its own crop PSNR (Y), and |SR - HR| below it")
        return save_comparison([(self._crop_title(crop), self.panels(crop)) for crop in crops], title, path)

    def _crop_title(self, crop: Crop) -> str:
        return (f"{self.images[crop.index]}: {crop.side}x{crop.side} at row {crop.top}, column {crop.left} "
                f"(disagreement {crop.score:.1f} grey levels)")


def pick_windows(candidates: list[tuple[int, int, np.ndarray]], count: int) -> list[Crop]:
    """Greedily the ``count`` best-scoring windows of ``(image index, side, score map)`` candidates, no two
    overlapping in one image."""
    flat = []
    for index, side, scores in candidates:
        order = np.argsort(-scores, axis=None, kind="stable")
        flat += [(float(scores.flat[i]), index, side, *np.unravel_index(int(i), scores.shape)) for i in order]
    flat.sort(key=lambda item: -item[0])  # stable: ties keep image, then row-major order
    taken: list[Crop] = []
    for score, index, side, top, left in flat:
        if len(taken) == count:
            break
        if all(crop.index != index or abs(crop.top - top) >= side or abs(crop.left - left) >= side for crop in taken):
            taken.append(Crop(index, int(top), int(left), side, score))
    return taken


def _window_sums(plane: np.ndarray, side: int) -> np.ndarray:
    """Sum of every ``side x side`` window, indexed by its top-left corner."""
    integral = np.zeros((plane.shape[0] + 1, plane.shape[1] + 1))
    integral[1:, 1:] = plane.cumsum(axis=0).cumsum(axis=1)
    return integral[side:, side:] - integral[:-side, side:] - integral[side:, :-side] + integral[:-side, :-side]


def save_comparison(rows: list[tuple[str, list[Panel]]], title: str, path: Path) -> Path:
    """Each ``(title, panels)`` as a row of images (pixels unsmoothed) over a row of error maps; a PNG."""
    columns = max(len(panels) for _, panels in rows)
    figure = new_figure(PANEL_INCHES * columns, (2 * PANEL_INCHES + 0.9) * len(rows) + 0.4)
    for subfigure, (heading, panels) in zip(figure.subfigures(len(rows), 1, squeeze=False)[:, 0], rows):
        axes = subfigure.subplots(2, columns, squeeze=False)
        limit = max([float(panel.error.max()) for panel in panels if panel.error is not None] + [1.0])
        for column, panel in enumerate(panels):
            axes[0, column].imshow(panel.image, interpolation="nearest")
            axes[0, column].set_title(f"{panel.label}\n{panel.caption}", fontsize=8)
            if panel.error is not None:
                axes[1, column].imshow(panel.error, cmap="magma", vmin=0.0, vmax=limit, interpolation="nearest")
        for axis in axes.flat:
            axis.set_axis_off()
        axes[1, 0].text(0.5, 0.5, f"|SR - HR|\n0 to {limit:.0f}\ngrey levels", ha="center", va="center", fontsize=8,
                        transform=axes[1, 0].transAxes)
        subfigure.suptitle(heading, fontsize=9)
    figure.suptitle(title, fontsize=10)
    return save_figure(figure, path)
