"""Spectral fidelity: how much high-frequency energy an SR image has, relative to its HR image.

On the crop and channel of PSNR (``pipeline.metrics.reference.measured_planes``; RGB is averaged to
one plane), each image's mean is removed and a 2-D Hann window applied (so the image border adds
no spurious edges), then its power spectrum ``|FFT|^2`` is averaged over rings of equal radial
frequency ``f = sqrt(fx^2 + fy^2)`` in cycles per pixel (the radially averaged power spectrum).

``hf_ratio`` is the SR energy over the HR energy summed over the rings of the band
``0.5 / scale <= f <= 0.5``: the frequencies above the low-resolution image's Nyquist limit, which
the upscaler has to synthesise. 1 means as much fine detail as HR, below 1 blurrier than HR, above 1
over-sharpened (or noisier) than HR. It measures the amount of detail, not whether it is right.
"""

from __future__ import annotations

import numpy as np

from pipeline.metrics.reference import measured_planes

NYQUIST = 0.5


def radial_power_spectrum(plane: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(frequencies, power)``: the mean ``|FFT|^2`` of the windowed, mean-removed ``H x W`` plane on
    rings one frequency bin ``1 / max(H, W)`` wide, from 0 to ``NYQUIST`` cycles per pixel."""
    height, width = plane.shape
    window = np.outer(np.hanning(height), np.hanning(width))
    power = np.abs(np.fft.fft2((plane - plane.mean()) * window)) ** 2
    radius = np.hypot(*np.meshgrid(np.fft.fftfreq(height), np.fft.fftfreq(width), indexing="ij"))
    step = 1.0 / max(height, width)
    rings = np.rint(radius / step).astype(np.int64)
    count = int(round(NYQUIST / step)) + 1
    inside = rings < count
    totals = np.bincount(rings[inside], weights=power[inside], minlength=count)
    members = np.bincount(rings[inside], minlength=count)
    return np.arange(count) * step, totals / np.maximum(members, 1)


def high_frequency_ratio(sr: np.ndarray, hr: np.ndarray, crop_border: int, y_channel: bool,
                         scale: int) -> float:
    """SR over HR radially averaged power in the band ``0.5 / scale <= f <= 0.5`` (see the module)."""
    sr_planes, hr_planes = measured_planes(sr, hr, crop_border, y_channel)
    frequencies, sr_power = radial_power_spectrum(sr_planes.mean(axis=2))
    _, hr_power = radial_power_spectrum(hr_planes.mean(axis=2))
    band = frequencies >= NYQUIST / scale
    return float(sr_power[band].sum() / hr_power[band].sum())
