"""Fixtures for VGG-based loss terms: a torch hub cache holding RANDOM VGG weights.

Random weights only exercise the plumbing (loading, shapes, gradients, invariants); no test
compares a value computed with them to a published number.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from pipeline.objectives.pretrained import _empty_features, hub_checkpoint_path


def random_vgg_features_state(arch: str, seed: int = 0) -> dict[str, torch.Tensor]:
    """A ``features.*`` state dict (the official file's layout, minus the classifier), He-initialised."""
    generator = torch.Generator().manual_seed(seed)
    features = _empty_features(arch).to_empty(device="cpu")
    for module in features:
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu", generator=generator)
            nn.init.zeros_(module.bias)
    return {f"features.{key}": value for key, value in features.state_dict().items()}


@pytest.fixture(scope="session")
def random_vgg_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A TORCH_HOME whose hub cache has random VGG19 and VGG16 weights under torchvision's file names."""
    home = tmp_path_factory.mktemp("torch_home")
    checkpoints = home / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True)
    for arch in ("vgg19", "vgg16"):
        torch.save(random_vgg_features_state(arch), checkpoints / hub_checkpoint_path(arch).name)
    return home


@pytest.fixture
def random_vgg_hub(random_vgg_home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point torch hub at ``random_vgg_home`` for one test; returns its checkpoints folder."""
    monkeypatch.setenv("TORCH_HOME", str(random_vgg_home))
    monkeypatch.setattr(torch.hub, "_hub_dir", None)
    return random_vgg_home / "hub" / "checkpoints"
