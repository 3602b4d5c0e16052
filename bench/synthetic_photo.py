"""Seeded synthetic photographs: smooth colour waves with sharp-edged discs, learnable at every scale.

Made in memory, so a check or a test depends on no image files of the machine it runs on; used by
``bench/gpu_check.py`` and the test fixtures (``tests/conftest.py``). Importable as ``synthetic_photo``
(with ``bench/`` on the path, as the bench scripts run) and as ``bench.synthetic_photo``.
"""

from __future__ import annotations

import numpy as np


def synthetic_photo(rng: np.random.Generator, height: int, width: int, discs: int = 3,
                    centres: tuple[float, float] = (0.1, 0.9), radii: tuple[float, float] = (0.08, 0.25)) -> np.ndarray:
    """``[height, width, 3]`` uint8: ``0.5 + sum of 4 sinusoids`` per channel plus ``discs`` discs.

    Coordinates are in units of the longer side; each disc's centre is uniform in ``centres`` on both
    axes, its radius uniform in ``radii``, and it shifts the colour by a uniform amount in ``[-0.3, 0.3]``.
    """
    y, x = np.mgrid[0:height, 0:width] / max(height, width)
    image = np.full((height, width, 3), 0.5)
    for channel in range(3):
        for _ in range(4):
            fy, fx = rng.uniform(-5, 5, size=2)
            image[..., channel] += rng.uniform(0.05, 0.15) * np.sin(2 * np.pi * (fy * y + fx * x) + rng.uniform(0, 6.3))
    for _ in range(discs):
        cy, cx, radius = rng.uniform(*centres), rng.uniform(*centres), rng.uniform(*radii)
        image[(y - cy) ** 2 + (x - cx) ** 2 < radius**2] += rng.uniform(-0.3, 0.3, size=3)
    return np.clip(image * 255 + 0.5, 0, 255).astype(np.uint8)
