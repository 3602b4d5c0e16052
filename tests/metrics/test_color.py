import numpy as np
import pytest
import torch

from pipeline.metrics.color import rgb_to_y_numpy, rgb_to_y_tensor


@pytest.mark.parametrize(
    ("rgb", "luma"),
    [((0, 0, 0), 16.0), ((255, 255, 255), 235.0), ((255, 0, 0), 81.481), ((0, 255, 0), 144.553), ((0, 0, 255), 40.966)],
)
def test_bt601_golden_values(rgb, luma):
    pixel = np.array(rgb, dtype=np.uint8).reshape(1, 1, 3)
    assert rgb_to_y_numpy(pixel)[0, 0] == pytest.approx(luma, abs=1e-12)


def test_y_is_not_rounded():
    pixel = np.array([[[1, 2, 3]]], dtype=np.uint8)
    luma = rgb_to_y_numpy(pixel)[0, 0]
    assert luma != round(luma)
    assert luma == pytest.approx(16 + (65.481 * 1 + 128.553 * 2 + 24.966 * 3) / 255, abs=1e-12)


def test_numpy_and_tensor_agree_on_batches():
    generator = torch.Generator().manual_seed(0)
    batch = torch.randint(0, 256, (2, 3, 7, 9), generator=generator).to(torch.float64)
    luma = rgb_to_y_tensor(batch)
    assert luma.shape == (2, 1, 7, 9)
    for image, plane in zip(batch, luma):
        expected = rgb_to_y_numpy(image.permute(1, 2, 0).numpy())
        np.testing.assert_allclose(plane[0].numpy(), expected, rtol=0, atol=1e-12)
