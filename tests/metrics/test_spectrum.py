"""The high-frequency energy ratio is 1 for SR = HR, falls as SR blurs, rises as it is sharpened."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

from pipeline.metrics.spectrum import high_frequency_ratio, radial_power_spectrum


def _hr(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(gaussian_filter(rng.normal(128, 50, (96, 80, 3)), (0.7, 0.7, 0)), 0, 255).astype(np.uint8)


def _filtered(hr: np.ndarray, sigma: float, amount: float = -1.0) -> np.ndarray:
    """``amount = -1``: Gaussian blur; ``amount > 0``: unsharp masking ``hr + amount (hr - blur)``."""
    blur = gaussian_filter(hr.astype(np.float64), (sigma, sigma, 0))
    image = blur if amount < 0 else hr + amount * (hr - blur)
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


def test_ratio_is_one_when_sr_is_hr():
    hr = _hr()
    for scale in (2, 3, 4):
        assert high_frequency_ratio(hr, hr, scale, True, scale) == 1.0


def test_ratio_falls_as_sr_blurs_and_exceeds_one_when_sharpened():
    hr = _hr()
    mild, strong = (high_frequency_ratio(_filtered(hr, sigma), hr, 4, True, 4) for sigma in (0.6, 1.5))
    assert 1.0 > mild > strong > 0.0
    assert high_frequency_ratio(_filtered(hr, 1.0, amount=1.0), hr, 4, False, 4) > 1.0


def test_radial_spectrum_of_a_cosine_peaks_at_its_frequency():
    rows = np.arange(64)
    plane = np.tile(np.cos(2 * np.pi * 0.25 * rows)[:, None], (1, 64))
    frequencies, power = radial_power_spectrum(plane)
    assert frequencies[0] == 0.0 and frequencies[-1] == pytest.approx(0.5)
    assert frequencies[np.argmax(power)] == pytest.approx(0.25)
