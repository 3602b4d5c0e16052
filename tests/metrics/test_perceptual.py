"""HaarPSI, MDSI and MS-GMSD: piq's values on PSNR's crop and channel, perfect on identical images."""

from __future__ import annotations

import numpy as np
import piq
import pytest
import torch
from scipy.ndimage import gaussian_filter

from pipeline.metrics.color import rgb_to_y_numpy
from pipeline.errors import PipelineError
from pipeline.metrics.perceptual import MIN_SIZE, WEIGHT_FREE, weight_free_scores

PERFECT = {"haarpsi": 1.0, "mdsi": 0.0, "ms_gmsd": 0.0}


def _images(seed: int = 0, noise: int = 12) -> tuple[np.ndarray, np.ndarray]:
    """A smooth random 70 x 66 HR image and a noisy copy of it."""
    rng = np.random.default_rng(seed)
    hr = np.clip(gaussian_filter(rng.normal(128, 60, (70, 66, 3)), (2, 2, 0)) * 3 - 256, 0, 255).astype(np.uint8)
    sr = np.clip(hr.astype(int) + rng.integers(-noise, noise + 1, hr.shape), 0, 255).astype(np.uint8)
    return sr, hr


def _tensor(image: np.ndarray) -> torch.Tensor:
    planes = image[..., None] if image.ndim == 2 else image
    return torch.from_numpy(planes.astype(np.float64)).permute(2, 0, 1).unsqueeze(0)


def test_identical_images_score_the_perfect_value():
    _, hr = _images()
    for y_channel in (True, False):
        scores = weight_free_scores(hr, hr, 4, y_channel)
        assert set(scores) == set(WEIGHT_FREE)
        assert scores == pytest.approx(PERFECT, abs=1e-5)  # float32


def test_scores_equal_piq_in_float64_on_the_cropped_luma_and_rgb():
    sr, hr = _images()
    crop = np.s_[3:-3, 3:-3]
    luma_sr, luma_hr = _tensor(rgb_to_y_numpy(sr[crop])), _tensor(rgb_to_y_numpy(hr[crop]))
    rgb_sr, rgb_hr = _tensor(sr[crop]), _tensor(hr[crop])
    expected = {"haarpsi": float(piq.haarpsi(luma_sr, luma_hr, data_range=255.0)),
                "mdsi": float(piq.mdsi(rgb_sr, rgb_hr, data_range=255.0)),  # MDSI is a colour metric: RGB always
                "ms_gmsd": float(piq.multi_scale_gmsd(luma_sr, luma_hr, data_range=255.0))}
    assert weight_free_scores(sr, hr, 3, True) == pytest.approx(expected, rel=1e-5)
    rgb_expected = {**expected, "haarpsi": float(piq.haarpsi(rgb_sr, rgb_hr, data_range=255.0)),
                    "ms_gmsd": float(piq.multi_scale_gmsd(rgb_sr, rgb_hr, data_range=255.0))}
    assert weight_free_scores(sr, hr, 3, False) == pytest.approx(rgb_expected, rel=1e-5)
    assert rgb_expected["haarpsi"] != pytest.approx(expected["haarpsi"], rel=1e-5)


def test_more_noise_scores_worse_on_every_metric():
    mild = weight_free_scores(*_images(noise=4), 2, True)
    strong = weight_free_scores(*_images(noise=30), 2, True)
    assert PERFECT["haarpsi"] > mild["haarpsi"] > strong["haarpsi"]
    assert PERFECT["mdsi"] < mild["mdsi"] < strong["mdsi"]
    assert PERFECT["ms_gmsd"] < mild["ms_gmsd"] < strong["ms_gmsd"]


def test_an_image_too_small_for_the_coarsest_scale_is_a_pipeline_error():
    sr, hr = _images()
    crop = np.s_[:MIN_SIZE + 3, :MIN_SIZE + 2]
    assert set(weight_free_scores(sr[crop], hr[crop], 1, True)) == set(WEIGHT_FREE)
    with pytest.raises(PipelineError, match=f"at least {MIN_SIZE}x{MIN_SIZE} pixels .* leaves {MIN_SIZE - 1}x{MIN_SIZE - 2}"):
        weight_free_scores(sr[crop], hr[crop], 2, True)
