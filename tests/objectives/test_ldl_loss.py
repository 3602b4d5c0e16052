"""LDL artefact loss: local variance against a direct computation, invariants of the artefact map."""

import numpy as np
import pytest
import torch

from pipeline.errors import ConfigError, PipelineError
from pipeline.objectives.ldl_loss import artifact_map, local_variance
from pipeline.objectives.registry import build_term


def test_local_variance_matches_a_direct_computation():
    image = torch.rand(1, 1, 9, 8, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    padded = np.pad(image[0, 0].numpy(), 3, mode="reflect")
    expected = np.array([[padded[i:i + 7, j:j + 7].var(ddof=1) for j in range(8)] for i in range(9)])
    np.testing.assert_allclose(local_variance(image, 7)[0, 0].numpy(), expected, rtol=1e-12)


def test_artifact_map_formula_on_a_single_image():
    generator = torch.Generator().manual_seed(1)
    hr = torch.rand(1, 3, 10, 10, generator=generator, dtype=torch.float64)
    sr = torch.rand(1, 3, 10, 10, generator=generator, dtype=torch.float64)
    residual = (hr - sr).abs().sum(dim=1, keepdim=True)
    expected = residual.var() ** 0.2 * local_variance(residual, 7)
    torch.testing.assert_close(artifact_map(sr, hr), expected)


def test_zero_for_identical_images():
    image = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(2))
    assert build_term("ldl")(image, image).item() == 0.0


def test_a_uniform_offset_is_not_an_artefact():
    image = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(3))
    assert build_term("ldl")(image + 0.1, image).item() == pytest.approx(0.0, abs=1e-9)


def test_scaling_the_residual_by_k_scales_the_loss_by_k_to_the_3_4():
    # |r| -> k|r|: local variance x k^2, global variance^(1/5) x k^(2/5), residual x k
    generator = torch.Generator().manual_seed(4)
    hr = torch.rand(2, 3, 16, 16, generator=generator, dtype=torch.float64)
    noise = torch.randn(2, 3, 16, 16, generator=generator, dtype=torch.float64)
    term = build_term("ldl")
    base = term(hr + 0.01 * noise, hr).item()
    assert base > 0
    assert term(hr + 0.02 * noise, hr).item() == pytest.approx(base * 2**3.4, rel=1e-9)


def test_window_and_size_are_checked():
    with pytest.raises(ConfigError, match="window"):
        build_term("ldl", {"window": 4})
    with pytest.raises(PipelineError, match="patch_size"):
        build_term("ldl")(torch.rand(1, 3, 3, 3), torch.rand(1, 3, 3, 3))
