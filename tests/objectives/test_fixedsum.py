"""FixedSum: outputs in [0, 1] whose per-(image, channel) mean is exactly k."""

import numpy as np
import pytest
import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from pipeline.objectives.fixedsum import fixed_sum

shapes = st.tuples(st.integers(1, 3), st.integers(1, 3), st.integers(1, 9), st.integers(1, 9))
unit = st.floats(0.0, 1.0, width=32)


@st.composite
def inputs(draw):
    shape = draw(shapes)
    kind = draw(st.sampled_from(["random", "zeros", "ones"]))
    if kind == "zeros":
        return np.zeros(shape, np.float32)
    if kind == "ones":
        return np.ones(shape, np.float32)
    return draw(arrays(np.float32, shape, elements=unit))


@settings(max_examples=200, deadline=None)
@given(x=inputs(), k=st.floats(0.001, 0.999))
@example(x=np.zeros((1, 1, 4, 4), np.float32), k=0.5)
@example(x=np.ones((1, 1, 4, 4), np.float32), k=0.5)
def test_in_unit_range_with_mean_k(x, k):
    w = fixed_sum(torch.from_numpy(x), k)
    assert w.shape == x.shape
    assert torch.isfinite(w).all()
    assert w.min() >= 0 and w.max() <= 1
    torch.testing.assert_close(w.double().mean(dim=(2, 3)), torch.full(x.shape[:2], k, dtype=torch.float64), atol=1e-6, rtol=0)


@pytest.mark.parametrize("fill", [0.0, 1.0])
def test_gradients_finite_at_degenerate_sums(fill):
    x = torch.full((2, 3, 5, 5), fill, requires_grad=True)
    (fixed_sum(x, 0.3) * torch.arange(25.0).view(5, 5)).sum().backward()
    assert torch.isfinite(x.grad).all()


def test_leaves_weights_with_mean_k_unchanged():
    x = torch.full((1, 2, 4, 4), 0.25)
    x[0, 0, 0, 0], x[0, 0, 0, 1] = 0.0, 0.5
    torch.testing.assert_close(fixed_sum(x, 0.25), x)


def test_preserves_order_within_a_channel():
    torch.manual_seed(0)
    x = torch.rand(1, 1, 6, 6)
    for k in (0.1, 0.9):
        w = fixed_sum(x, k).flatten()
        assert torch.equal(torch.argsort(w, stable=True), torch.argsort(x.flatten(), stable=True))


@pytest.mark.parametrize("k", [0.0, 1.0, -0.1])
def test_rejects_k_outside_open_unit_interval(k):
    with pytest.raises(ValueError, match="0 < k < 1"):
        fixed_sum(torch.rand(1, 1, 2, 2), k)
