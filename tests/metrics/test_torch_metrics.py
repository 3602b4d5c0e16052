import math
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.signal import correlate2d

from pipeline.errors import PipelineError
from pipeline.imageio import read_image
from pipeline.metrics import reference, torch_metrics
from pipeline.metrics.color import rgb_to_y_numpy

GOLDEN = Path(__file__).resolve().parents[2] / ".." / "shared" / "golden" / "matlab_imresize"


def _to_batch(*images: np.ndarray) -> torch.Tensor:
    return torch.stack([torch.from_numpy(image).permute(2, 0, 1) for image in images]).float() / 255


def _noisy_batch(seed: int, batch: int = 3, size: tuple[int, int] = (48, 40), sigma: float = 0.08):
    generator = torch.Generator().manual_seed(seed)
    hr = torch.rand(batch, 3, *size, generator=generator)
    noise = torch.randn(hr.shape, generator=generator) * sigma * torch.linspace(0.2, 1, batch).view(-1, 1, 1, 1)
    return torch_metrics.quantize(hr + noise), torch_metrics.quantize(hr)


def _as_uint8(batch: torch.Tensor) -> list[np.ndarray]:
    return [(image.permute(1, 2, 0) * 255).round().to(torch.uint8).numpy() for image in batch]


@pytest.mark.parametrize("y_channel", [True, False])
def test_batched_metrics_match_the_float64_reference(y_channel):
    sr, hr = _noisy_batch(0)
    psnr = torch_metrics.psnr(sr, hr, crop_border=2, y_channel=y_channel)
    ssim = torch_metrics.ssim(sr, hr, crop_border=2, y_channel=y_channel)
    assert psnr.shape == ssim.shape == (3,) and psnr.dtype == torch.float64
    for i, (sr_image, hr_image) in enumerate(zip(_as_uint8(sr), _as_uint8(hr))):
        assert psnr[i].item() == pytest.approx(reference.psnr(sr_image, hr_image, 2, y_channel), abs=1e-4)
        assert ssim[i].item() == pytest.approx(reference.ssim(sr_image, hr_image, 2, y_channel), abs=1e-6)
    assert psnr[0] > psnr[1] > psnr[2]


@pytest.mark.skipif(not GOLDEN.is_dir(), reason="golden images not found in ../shared/golden/matlab_imresize")
def test_golden_values_through_the_torch_path():
    from pipeline.degrade.imresize import imresize_uint8

    hr = read_image(GOLDEN / "baboon.png")
    sr = imresize_uint8(read_image(GOLDEN / "baboon_down_x4_matlab.png"), 4)
    sr_batch, hr_batch = _to_batch(sr), _to_batch(hr)
    assert torch_metrics.psnr(sr_batch, hr_batch, 4, y_channel=False).item() == pytest.approx(20.419710, abs=1e-4)
    assert torch_metrics.ssim(sr_batch, hr_batch, 4, y_channel=False).item() == pytest.approx(0.391853, abs=1e-5)
    assert torch_metrics.psnr(sr_batch, hr_batch, 4).item() == pytest.approx(22.441899, abs=1e-4)
    assert torch_metrics.ssim(sr_batch, hr_batch, 4).item() == pytest.approx(0.453098, abs=1e-5)


def test_quantize_keeps_what_an_8_bit_png_keeps():
    values = torch.tensor([-0.5, 0.0, 0.5 / 255, 0.6 / 255, 0.5, 1.0, 1.7])
    expected = torch.tensor([0.0, 0.0, 0.0, 1.0, 128.0, 255.0, 255.0]) / 255  # 0.5*255 = 127.5 rounds to even 128
    torch.testing.assert_close(torch_metrics.quantize(values), expected, rtol=0, atol=0)
    once = torch_metrics.quantize(torch.rand(50, generator=torch.Generator().manual_seed(1)))
    torch.testing.assert_close(torch_metrics.quantize(once), once, rtol=0, atol=0)


def test_identical_batches():
    _, hr = _noisy_batch(2)
    assert torch.isinf(torch_metrics.psnr(hr, hr, 0)).all()
    torch.testing.assert_close(torch_metrics.ssim(hr, hr, 0), torch.ones(3, dtype=torch.float64))
    torch.testing.assert_close(torch_metrics.ms_ssim(hr, hr, 0, y_channel=False), torch.ones(3, dtype=torch.float64))


def _numpy_ms_ssim(sr: np.ndarray, hr: np.ndarray, weights: list[float]) -> float:
    """Independent MS-SSIM of one Y plane: 2-D scipy filtering, numpy pooling, reference SSIM constants."""
    window = np.outer(reference.gaussian_window_1d(), reference.gaussian_window_1d())
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    weights = np.asarray(weights) * sum(torch_metrics.MS_SSIM_WEIGHTS) / np.sum(weights)
    value = 1.0
    for level, weight in enumerate(weights):
        blur = lambda plane: correlate2d(plane, window, mode="valid")  # noqa: E731
        mu_x, mu_y = blur(sr), blur(hr)
        var_x, var_y = blur(sr * sr) - mu_x**2, blur(hr * hr) - mu_y**2
        cov = blur(sr * hr) - mu_x * mu_y
        cs = (2 * cov + c2) / (var_x + var_y + c2)
        if level == len(weights) - 1:
            cs = cs * (2 * mu_x * mu_y + c1) / (mu_x**2 + mu_y**2 + c1)
        value *= max(cs.mean(), 0) ** weight
        h, w = sr.shape[0] // 2 * 2, sr.shape[1] // 2 * 2
        sr = sr[:h, :w].reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3))
        hr = hr[:h, :w].reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3))
    return value


@pytest.mark.parametrize(("size", "scales"), [((181, 190), 5), ((47, 60), 3), ((45, 60), 2)])
def test_ms_ssim_matches_an_independent_implementation(size, scales):
    sr, hr = _noisy_batch(3, batch=2, size=size, sigma=0.15)
    values = torch_metrics.ms_ssim(sr, hr, crop_border=1)
    for i, (sr_image, hr_image) in enumerate(zip(_as_uint8(sr), _as_uint8(hr))):
        sr_y, hr_y = (rgb_to_y_numpy(image[1:-1, 1:-1]) for image in (sr_image, hr_image))
        expected = _numpy_ms_ssim(sr_y, hr_y, list(torch_metrics.MS_SSIM_WEIGHTS[:scales]))
        assert values[i].item() == pytest.approx(expected, abs=1e-7)  # float32 inputs: k/255*255 is k +- 2e-5


def test_single_scale_ms_ssim_is_ssim():
    sr, hr = _noisy_batch(4)
    single_scale = torch_metrics.ms_ssim(sr, hr, 0, y_channel=False, weights=(1.0,))
    torch.testing.assert_close(single_scale, torch_metrics.ssim(sr, hr, 0, y_channel=False))


def test_ms_ssim_falls_with_noise():
    sr, hr = _noisy_batch(5, size=(96, 96), sigma=0.2)
    values = torch_metrics.ms_ssim(sr, hr, 0)
    assert 0 < values[2] < values[1] < values[0] < 1


def test_float32_and_float64_inputs_agree():
    sr, hr = _noisy_batch(6)
    torch.testing.assert_close(torch_metrics.psnr(sr, hr, 1), torch_metrics.psnr(sr.double(), hr.double(), 1))


def test_bad_shapes_and_crops_are_pipeline_errors():
    sr, hr = _noisy_batch(7, size=(20, 20))
    with pytest.raises(PipelineError, match="same shape"):
        torch_metrics.psnr(sr, hr[..., :-1], 0)
    with pytest.raises(PipelineError, match="removes the whole"):
        torch_metrics.psnr(sr, hr, 10)
    with pytest.raises(PipelineError, match="11x11"):
        torch_metrics.ssim(sr, hr, 5)
    with pytest.raises(PipelineError, match="11x11"):
        torch_metrics.ms_ssim(sr[..., :10, :], hr[..., :10, :], 0)
    with pytest.raises(PipelineError, match="MS-SSIM weights"):
        torch_metrics.ms_ssim(sr, hr, 0, weights=())


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu():
    sr, hr = _noisy_batch(8, size=(64, 64))
    for metric in (torch_metrics.psnr, torch_metrics.ssim, torch_metrics.ms_ssim):
        on_gpu = metric(sr.cuda(), hr.cuda(), 2)
        assert on_gpu.device.type == "cuda"
        torch.testing.assert_close(on_gpu.cpu(), metric(sr, hr, 2), rtol=0, atol=1e-9)
    assert math.isfinite(torch_metrics.psnr(sr.cuda(), hr.cuda(), 2)[0].item())
