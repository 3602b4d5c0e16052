"""FID: unavailable (a reason, never a number) without weights; with a checkpoint it is a distance."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pipeline.config import FidConfig
from pipeline.metrics.fid_metric import FidMetric, fid_inception
from pipeline.metrics.lpips_metric import Unavailable


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    """A random-weight FID Inception checkpoint, made by the test (the real one cannot be downloaded here)."""
    path = tmp_path_factory.mktemp("fid") / "inception.pth"
    torch.save(random_fid_inception().state_dict(), path)
    return path


def random_fid_inception() -> torch.nn.Module:
    """The FID Inception with He-initialised convolutions, so its features keep a usable scale."""
    torch.manual_seed(0)
    net = fid_inception()
    for module in net.modules():
        if isinstance(module, torch.nn.Conv2d):
            torch.nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
    return net


def test_without_weights_fid_is_unavailable_with_the_fix(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    missing = FidMetric.load(FidConfig())
    assert isinstance(missing, Unavailable) and "weights fetch" in missing.reason
    assert "set metrics.fid.weights" in missing.reason
    gone = FidMetric.load(FidConfig(weights=tmp_path / "nope.pth"))
    assert isinstance(gone, Unavailable) and "does not exist" in gone.reason
    wrong = tmp_path / "wrong.pth"
    torch.save({"conv.weight": torch.zeros(1)}, wrong)
    refused = FidMetric.load(FidConfig(weights=wrong))
    assert isinstance(refused, Unavailable) and "is not the FID Inception's weights" in refused.reason


def test_a_pickled_object_is_not_loaded_as_weights(tmp_path):
    class Payload:
        def __reduce__(self):
            return (open, (str(tmp_path / "ran"), "w"))
    path = tmp_path / "evil.pth"
    torch.save(Payload(), path)
    assert isinstance(FidMetric.load(FidConfig(weights=path)), Unavailable)
    assert not (tmp_path / "ran").exists()


def test_patches_tile_the_image_without_overlap(weights):
    metric = FidMetric.load(FidConfig(weights=weights, patch=16))
    image = np.arange(40 * 50 * 3, dtype=np.uint8).reshape(40, 50, 3)
    patches = metric.patches(image)
    assert patches.shape == (2 * 3, 3, 16, 16)
    assert torch.equal(patches[4], torch.from_numpy(image[16:32, 16:32]).permute(2, 0, 1).float() / 255)


def test_the_default_tap_is_the_2048_pool3_features(weights):
    metric = FidMetric.load(FidConfig(weights=weights, patch=16))
    assert metric.dims == 2048
    features = metric.features(metric.patches(np.full((16, 32, 3), 100, dtype=np.uint8)))
    assert features.shape == (2, 2048) and np.isfinite(features).all()


def test_fid_is_zero_for_identical_sets_and_grows_with_distortion(weights):
    """On the 64-channel tap: the 2048-d covariance square root takes minutes on a busy CPU."""
    dims = 64
    metric = FidMetric.load(FidConfig(weights=weights, patch=16, dims=dims))
    rng = np.random.default_rng(0)
    hr = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    blurred = ((hr.astype(np.int32) + np.roll(hr, 1, axis=0) + np.roll(hr, 1, axis=1)) // 3).astype(np.uint8)
    reference = metric.features(metric.patches(hr))
    assert reference.shape == (4, dims) and reference.std() > 1e-3
    assert metric.distance(reference, reference) == pytest.approx(0.0, abs=1e-6 * np.square(reference).sum())
    assert metric.distance(metric.features(metric.patches(blurred)), reference) > 0.01 * np.square(reference).sum()
