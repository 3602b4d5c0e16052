from pathlib import Path

import numpy as np
import pytest
import torch

from pipeline.degrade.imresize import contributions, imresize, imresize_uint8, to_uint8
from pipeline.errors import PipelineError
from pipeline.imageio import read_image

GOLDEN = Path(__file__).resolve().parents[2] / ".." / "shared" / "golden" / "matlab_imresize"
needs_golden = pytest.mark.skipif(
    not (GOLDEN / "baboon.png").is_file(), reason="../shared/golden (MATLAB outputs) is not beside the checkout"
)


@needs_golden
@pytest.mark.parametrize(
    ("name", "scale"), [("down_x2", 1 / 2), ("down_x3", 1 / 3), ("down_x4", 1 / 4), ("up_x2", 2), ("up_x3", 3)]
)
def test_matches_matlab_r2017b_pixel_for_pixel(name, scale):
    expected = read_image(GOLDEN / f"baboon_{name}_matlab.png")
    actual = imresize_uint8(read_image(GOLDEN / "baboon.png"), scale)
    assert actual.shape == expected.shape
    assert np.count_nonzero(actual != expected) == 0


@needs_golden
def test_size_argument_matches_scale_argument_on_matlab_golden():
    image = read_image(GOLDEN / "baboon.png")
    chw = torch.from_numpy(image.transpose(2, 0, 1).copy()).to(torch.float64) / 255.0
    by_size = to_uint8(imresize(chw, size=(160, 164)).numpy().transpose(1, 2, 0))
    assert np.array_equal(by_size, read_image(GOLDEN / "baboon_down_x3_matlab.png"))


@pytest.mark.parametrize(
    ("shape", "scale", "expected"), [((7, 10), 0.5, (4, 5)), ((10, 11), 1 / 3, (4, 4)), ((5, 3), 3, (15, 9))]
)
def test_output_size_is_ceil_of_scaled_input(shape, scale, expected):
    image = torch.rand(shape, generator=torch.Generator().manual_seed(0))
    assert tuple(imresize(image, scale=scale).shape) == expected


@pytest.mark.parametrize("scale", [1 / 4, 1 / 3, 0.7, 2, 3])
def test_constant_image_stays_constant(scale):
    image = torch.full((2, 3, 23, 17), 0.37, dtype=torch.float32)
    result = imresize(image, scale=scale)
    assert result.dtype == torch.float64
    value = float(torch.tensor(0.37, dtype=torch.float32))
    assert torch.allclose(result, torch.full_like(result, value), rtol=0, atol=1e-12)


def test_batched_float32_equals_per_image():
    generator = torch.Generator().manual_seed(1)
    batch = torch.rand(4, 3, 29, 31, generator=generator, dtype=torch.float32)
    resized = imresize(batch, scale=1 / 3)
    assert resized.shape == (4, 3, 10, 11)
    for image, result in zip(batch, resized):
        assert torch.equal(imresize(image, scale=1 / 3), result)


def test_weights_are_normalised_and_indices_mirror_the_border():
    # Output pixel 1 of a /3 resize samples u = 2 (1-based) over positions -3..7; the taps at
    # distance +-3 have weight cubic(1) = 0 in every row and are dropped; position p <= 0 mirrors
    # to 1 - p and p > 6 to 13 - p (1-based), i.e. symmetric padding.
    weights, indices = contributions(in_length=6, out_length=2, scale=1 / 3, antialias=True)
    assert indices[0].tolist() == [3, 2, 0, 0, 1, 2, 3, 5, 5]
    assert indices[1].tolist() == [0, 0, 2, 3, 4, 5, 5, 3, 2]
    assert np.allclose(weights.sum(axis=1), 1.0, rtol=0, atol=1e-15)
    assert np.allclose(weights[0], weights[0][::-1], rtol=0, atol=1e-15)
    assert weights[0, 4] == pytest.approx(1 / 3, abs=1e-15)


def test_without_antialias_downscale_keeps_the_narrow_kernel():
    wide, _ = contributions(in_length=40, out_length=10, scale=1 / 4, antialias=True)
    narrow, _ = contributions(in_length=40, out_length=10, scale=1 / 4, antialias=False)
    assert narrow.shape[1] < wide.shape[1]


def test_smaller_scale_dimension_is_resized_first():
    image = torch.rand(3, 20, 24, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    columns_first = imresize(imresize(image, size=(20, 8)), size=(45, 8))
    rows_first = imresize(imresize(image, size=(45, 24)), size=(45, 8))
    result = imresize(image, size=(45, 8))
    assert torch.equal(result, columns_first)
    assert not torch.equal(result, rows_first)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_same_result_on_cuda_as_on_cpu():
    image = torch.rand(2, 3, 37, 41, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    for scale in (1 / 4, 1 / 3, 2):
        assert torch.equal(imresize(image.cuda(), scale=scale).cpu(), imresize(image, scale=scale))


@pytest.mark.parametrize("kwargs", [{}, {"scale": 0.5, "size": (2, 2)}, {"scale": 0.0}, {"size": (0, 3)}])
def test_bad_arguments_raise_pipeline_error(kwargs):
    with pytest.raises(PipelineError):
        imresize(torch.zeros(3, 8, 8), **kwargs)


def test_to_uint8_rounds_half_away_from_zero_and_clips():
    values = np.array([-0.2, 0.5 / 255, 1.5 / 255, 254.49 / 255, 1.3])
    assert to_uint8(values).tolist() == [0, 1, 2, 254, 255]
