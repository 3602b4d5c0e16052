import math
from pathlib import Path

import numpy as np
import pytest
from skimage.metrics import structural_similarity

from pipeline.errors import PipelineError
from pipeline.imageio import read_image
from pipeline.metrics import reference

GOLDEN = Path(__file__).resolve().parents[2] / ".." / "shared" / "golden" / "matlab_imresize"


def _noisy_pair(seed: int, shape=(40, 52, 3), sigma: float = 20.0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    hr = rng.integers(0, 256, shape).astype(np.uint8)
    sr = np.clip(hr + rng.normal(0, sigma, shape), 0, 255).round().astype(np.uint8)
    return sr, hr


@pytest.mark.skipif(not GOLDEN.is_dir(), reason="golden images not found in ../shared/golden/matlab_imresize")
def test_golden_matlab_psnr_ssim_on_baboon_x4():
    from pipeline.degrade.imresize import imresize_uint8

    hr = read_image(GOLDEN / "baboon.png")
    sr = imresize_uint8(read_image(GOLDEN / "baboon_down_x4_matlab.png"), 4)
    assert reference.psnr(sr, hr, 4, y_channel=False) == pytest.approx(20.419710, abs=1e-5)
    assert reference.ssim(sr, hr, 4, y_channel=False) == pytest.approx(0.391853, abs=1e-5)
    assert reference.psnr(sr, hr, 4, y_channel=True) == pytest.approx(22.441899, abs=1e-5)
    assert reference.ssim(sr, hr, 4, y_channel=True) == pytest.approx(0.453098, abs=1e-5)


def test_psnr_of_known_mse():
    hr = np.full((8, 8, 3), 100, dtype=np.uint8)
    sr = hr + np.uint8(1)
    assert reference.psnr(sr, hr, 0, y_channel=False) == pytest.approx(20 * math.log10(255), abs=1e-12)
    shift = (65.481 + 128.553 + 24.966) / 255  # Y moves by this much when R, G and B all move by 1
    assert reference.psnr(sr, hr, 0, y_channel=True) == pytest.approx(20 * math.log10(255 / shift), abs=1e-12)


def test_rgb_psnr_pools_the_mse_of_all_channels():
    hr = np.zeros((4, 4, 3))
    sr = hr.copy()
    sr[..., 0] = 3.0  # MSE over all channels = 9 / 3 = 3
    assert reference.psnr(sr, hr, 0, y_channel=False) == pytest.approx(10 * math.log10(255**2 / 3), abs=1e-12)


def test_identical_images():
    _, hr = _noisy_pair(0)
    assert reference.psnr(hr, hr, 2, y_channel=True) == math.inf
    assert reference.ssim(hr, hr, 2, y_channel=False) == pytest.approx(1.0, abs=1e-12)


def test_ssim_matches_scikit_image_gaussian_ssim():
    sr, hr = _noisy_pair(1)
    expected = structural_similarity(
        sr.astype(np.float64), hr.astype(np.float64), gaussian_weights=True, sigma=1.5,
        use_sample_covariance=False, data_range=255, channel_axis=2,
    )
    assert reference.ssim(sr, hr, 0, y_channel=False) == pytest.approx(expected, abs=1e-10)


def test_ssim_is_symmetric_and_falls_with_noise():
    sr, hr = _noisy_pair(2, sigma=10)
    noisier, _ = _noisy_pair(2, sigma=40)
    assert reference.ssim(sr, hr, 0, True) == pytest.approx(reference.ssim(hr, sr, 0, True), abs=1e-12)
    assert reference.ssim(noisier, hr, 0, True) < reference.ssim(sr, hr, 0, True) < 1


def test_crop_border_equals_measuring_the_cropped_images():
    sr, hr = _noisy_pair(3)
    inner = (slice(3, -3), slice(3, -3))
    assert reference.psnr(sr, hr, 3, True) == reference.psnr(sr[inner], hr[inner], 0, True)
    assert reference.ssim(sr, hr, 3, False) == reference.ssim(sr[inner], hr[inner], 0, False)


def test_uint8_and_float_inputs_agree():
    sr, hr = _noisy_pair(4)
    assert reference.ssim(sr, hr, 1, True) == reference.ssim(sr.astype(np.float32), hr.astype(np.float64), 1, True)


@pytest.mark.parametrize(
    ("sr_shape", "hr_shape", "crop"),
    [
        ((8, 8, 3), (8, 9, 3), 0),
        ((8, 8), (8, 8), 0),
        ((12, 12, 3), (12, 12, 3), 6),
        ((12, 12, 3), (12, 12, 3), -1),
    ],
)
def test_bad_inputs_are_pipeline_errors(sr_shape, hr_shape, crop):
    with pytest.raises(PipelineError):
        reference.psnr(np.zeros(sr_shape), np.zeros(hr_shape), crop, False)


def test_ssim_needs_an_eleven_pixel_window():
    sr, hr = _noisy_pair(5, shape=(14, 30, 3))
    with pytest.raises(PipelineError, match="11x11"):
        reference.ssim(sr, hr, 2, True)
