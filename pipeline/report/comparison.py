"""Comparison images: the same HR-sized crop of HR, bicubic and every objective's output, side by side.

The crop is chosen deterministically from the HR image alone: the ``size x size`` window with the
largest grey-level variance (the most texture and edges, where losses differ most), the first
in row-major order on ties.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pipeline.report.figures import new_figure, save_figure

PANEL_INCHES = 2.2


@dataclass(frozen=True)
class Panel:
    """One image of the comparison and the caption under its label."""

    label: str
    image: np.ndarray
    caption: str


@dataclass
class Comparison:
    """The first image of one benchmark at one scale: its HR image and each method's output with its
    PSNR, and the training seed of each model (``seeds``; bicubic has none)."""

    benchmark: str
    scale: int
    image: str
    hr: np.ndarray
    outputs: dict[str, tuple[np.ndarray, float]] = field(default_factory=dict)
    seeds: dict[str, int] = field(default_factory=dict)

    def panels(self, window: tuple[slice, slice]) -> list[Panel]:
        """HR, then the outputs in insertion order (bicubic first), cropped to ``window``; a model's label names its seed."""
        panels = [Panel("HR", self.hr[window], "ground truth")]
        for name, (image, psnr) in self.outputs.items():
            label = f"{name}, seed {self.seeds[name]}" if name in self.seeds else name
            panels.append(Panel(label, image[window], f"PSNR {psnr:.2f} dB"))
        return panels

    def save(self, crop_size: int, path: Path) -> Path:
        """HR, then the outputs in insertion order (bicubic first), all cropped to the same window."""
        top, left, side = highest_variance_crop(self.hr, crop_size)
        panels = self.panels(np.s_[top:top + side, left:left + side])
        title = (f"{self.benchmark} x{self.scale}, image {self.image}: {side}x{side} crop at row {top}, column {left}; "
                 "PSNR of the whole image")
        return save_comparison(panels, title, path)


def highest_variance_crop(image: np.ndarray, size: int) -> tuple[int, int, int]:
    """``(top, left, side)`` of the ``side x side`` window of ``image`` (``H x W x 3``) whose mean
    grey level (the RGB average) varies most; ``side = min(size, H, W)``.

    Window sums come from integral images, so every position is tried in ``O(H W)``.
    """
    grey = np.asarray(image, dtype=np.float64).mean(axis=2)
    side = min(size, *grey.shape)
    sums = _window_sums(grey, side)
    squares = _window_sums(grey * grey, side)
    area = side * side
    variance = squares / area - (sums / area) ** 2
    top, left = np.unravel_index(int(np.argmax(variance)), variance.shape)
    return int(top), int(left), side


def _window_sums(plane: np.ndarray, side: int) -> np.ndarray:
    """Sum of every ``side x side`` window, indexed by its top-left corner."""
    integral = np.zeros((plane.shape[0] + 1, plane.shape[1] + 1))
    integral[1:, 1:] = plane.cumsum(axis=0).cumsum(axis=1)
    return integral[side:, side:] - integral[:-side, side:] - integral[side:, :-side] + integral[:-side, :-side]


def save_comparison(panels: list[Panel], title: str, path: Path) -> Path:
    """Draw ``panels`` left to right (pixels unsmoothed) with ``title`` above them; write a PNG."""
    figure = new_figure(PANEL_INCHES * len(panels), PANEL_INCHES + 0.8)
    axes = figure.subplots(1, len(panels), squeeze=False)[0]
    for axis, panel in zip(axes, panels):
        axis.imshow(panel.image, interpolation="nearest")
        axis.set_title(f"{panel.label}\n{panel.caption}", fontsize=9)
        axis.set_axis_off()
    figure.suptitle(title, fontsize=10)
    return save_figure(figure, path)
