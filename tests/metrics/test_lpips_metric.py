import logging
import os
import socket
import subprocess
import sys
from pathlib import Path

import lpips
import pytest
import torch
from torchvision import models

from pipeline.config import LpipsConfig
from pipeline.errors import PipelineError
from pipeline.metrics.lpips_metric import LpipsMetric, Unavailable, hub_checkpoint_path


@pytest.fixture(scope="module")
def alexnet_checkpoint(tmp_path_factory) -> tuple[Path, dict[str, torch.Tensor]]:
    """A randomly initialised torchvision AlexNet saved like torchvision's ImageNet checkpoint."""
    torch.manual_seed(0)
    state = models.alexnet().state_dict()
    path = tmp_path_factory.mktemp("weights") / "alexnet.pth"
    torch.save(state, path)
    return path, state


@pytest.fixture
def torch_home(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    assert Path(torch.hub.get_dir()).is_relative_to(tmp_path)
    return tmp_path / "torch"


def _images(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(2, 3, 64, 64, generator=generator), torch.rand(2, 3, 64, 64, generator=generator)


def test_loads_the_backbone_from_the_hub_cache(torch_home, alexnet_checkpoint):
    path, state = alexnet_checkpoint
    cached = hub_checkpoint_path("alex")
    assert cached == torch_home / "hub" / "checkpoints" / "alexnet-owt-7be5be79.pth"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(path.read_bytes())

    metric = LpipsMetric.load(LpipsConfig(net="alex"), allow_download=False)

    assert isinstance(metric, LpipsMetric)
    loaded = metric.model.net.state_dict()
    torch.testing.assert_close(loaded["slice1.0.weight"], state["features.0.weight"], rtol=0, atol=0)
    torch.testing.assert_close(loaded["slice5.10.bias"], state["features.10.bias"], rtol=0, atol=0)
    shipped = torch.load(Path(lpips.__file__).parent / "weights" / "v0.1" / "alex.pth", map_location="cpu")
    torch.testing.assert_close(metric.model.lin4.model[1].weight, shipped["lin4.model.1.weight"], rtol=0, atol=0)

    sr, hr = _images(0)
    distance = metric(sr, hr)
    assert distance.shape == (2,) and torch.isfinite(distance).all() and (distance > 0).all()
    assert torch.equal(metric(hr, hr), torch.zeros(2))
    torch.testing.assert_close(distance, metric.model(2 * sr - 1, 2 * hr - 1).flatten())
    assert not metric.train().training and not metric.model.lin0.training
    assert not distance.requires_grad


def test_missing_weights_are_unavailable_with_the_reason(torch_home, caplog):
    with caplog.at_level(logging.WARNING, logger="pipeline.metrics.lpips_metric"):
        result = LpipsMetric.load(LpipsConfig(net="alex"), allow_download=False)
    assert isinstance(result, Unavailable)
    assert str(hub_checkpoint_path("alex")) in result.reason and "metrics.lpips.weights" in result.reason
    assert [record.getMessage() for record in caplog.records] == [result.reason]


def test_a_failed_download_is_unavailable_quickly(torch_home, monkeypatch):
    def offline(*args, **kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setattr(socket, "create_connection", offline)
    result = LpipsMetric.load(LpipsConfig(net="vgg"))
    assert isinstance(result, Unavailable)
    assert "VGG16" in result.reason and "cannot be downloaded (network is unreachable)" in result.reason
    assert not hub_checkpoint_path("vgg").exists()


def test_a_corrupt_cached_checkpoint_is_unavailable(torch_home):
    cached = hub_checkpoint_path("alex")
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"not a checkpoint")
    result = LpipsMetric.load(LpipsConfig(net="alex"), allow_download=False)
    assert isinstance(result, Unavailable) and "not a readable AlexNet checkpoint" in result.reason


def test_explicit_weights_path(torch_home, alexnet_checkpoint, tmp_path):
    path, state = alexnet_checkpoint
    metric = LpipsMetric.load(LpipsConfig(net="alex", weights=path), allow_download=False)
    assert isinstance(metric, LpipsMetric)
    loaded = metric.model.net.state_dict()
    torch.testing.assert_close(loaded["slice2.3.weight"], state["features.3.weight"], rtol=0, atol=0)

    with pytest.raises(PipelineError, match="does not exist"):
        LpipsMetric.load(LpipsConfig(net="alex", weights=tmp_path / "absent.pth"))
    with pytest.raises(PipelineError, match="not a torchvision SqueezeNet 1.1 checkpoint"):
        LpipsMetric.load(LpipsConfig(net="squeeze", weights=path))


def test_disabled_is_unavailable_without_a_warning(caplog):
    with caplog.at_level(logging.WARNING):
        result = LpipsMetric.load(LpipsConfig(enabled=False))
    assert isinstance(result, Unavailable) and "enabled" in result.reason
    assert not caplog.records


def test_without_the_lpips_package_it_is_unavailable(torch_home, alexnet_checkpoint, monkeypatch):
    monkeypatch.setitem(sys.modules, "lpips", None)  # importing it raises ImportError, as where it is not installed
    result = LpipsMetric.load(LpipsConfig(net="alex", weights=alexnet_checkpoint[0]), allow_download=False)
    assert isinstance(result, Unavailable) and "lpips package is not installed" in result.reason


def test_a_sweep_trial_process_does_not_import_torchvision():
    """torchvision costs about 1 s to import; a trial with LPIPS off never builds a backbone."""
    probe = "import sys, pipeline.tune.trial; print('torchvision' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True,
                            env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])})
    assert result.stdout.split() == ["False"]
