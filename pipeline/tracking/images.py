"""The comparison images a training run logs: labelled strips of equal-height images, drawn with PIL."""

from __future__ import annotations

from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

LABEL_PIXELS = 14  # text height of the labels on logged image strips


def side_by_side(*images: np.ndarray, gap: int = 4) -> np.ndarray:
    """Equal-height uint8 images left to right, separated by ``gap`` white columns."""
    white = np.full((images[0].shape[0], gap, 3), 255, dtype=np.uint8)
    parts = [part for image in images for part in (white, image)][1:]
    return np.concatenate(parts, axis=1)


def labelled_strip(panels: Sequence[tuple[str, np.ndarray]], zoom: int = 2, gap: int = 4) -> np.ndarray:
    """Equal-height uint8 images side by side, each enlarged ``zoom`` times (nearest neighbour, so pixels
    stay visible) under a white band that names it, e.g. ``[("bicubic", ...), ("SR", ...), ("HR", ...)]``."""
    images = [np.repeat(np.repeat(image, zoom, axis=0), zoom, axis=1) for _, image in panels]
    font = ImageFont.load_default(size=LABEL_PIXELS)
    bands = []
    for (label, _), image in zip(panels, images):
        band = Image.new("RGB", (image.shape[1], LABEL_PIXELS + 6), "white")
        ImageDraw.Draw(band).text((2, 2), label, fill="black", font=font)
        bands.append(np.concatenate([np.asarray(band), image], axis=0))
    return side_by_side(*bands, gap=gap)
