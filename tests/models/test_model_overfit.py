"""A tiny network of every family, with a conv head and L1, fits one 3x16x16 patch in 50 Adam steps."""

import pytest
import torch
import torch.nn.functional as F

from pipeline.models.registry import build_model
from pipeline.objectives.base import RGBHead
from tests.models.tiny_networks import TINY_NETWORKS


def textured_patch() -> torch.Tensor:
    """A deterministic 1x3x16x16 HR patch in [0, 1] with a different pattern per channel."""
    y, x = torch.meshgrid(torch.linspace(0, 1, 16), torch.linspace(0, 1, 16), indexing="ij")
    channels = [0.5 + 0.4 * torch.sin(6 * x + 3 * y), 0.3 + 0.5 * x * y, 0.5 + 0.3 * torch.cos(9 * y) * x]
    return torch.stack(channels)[None]


@pytest.mark.parametrize("name", sorted(TINY_NETWORKS))
def test_tiny_network_overfits_one_patch(name):
    torch.manual_seed(0)
    hr = textured_patch()
    lr = F.avg_pool2d(hr, 2)
    net = build_model(name, 2, TINY_NETWORKS[name])
    head = RGBHead(net.feature_channels)
    optimizer = torch.optim.Adam([*net.parameters(), *head.parameters()], lr=5e-3)
    losses = []
    for _ in range(50):
        loss = (head(net(lr)) - hr).abs().mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    best_constant = (hr - hr.flatten(2).median(dim=-1).values[..., None, None]).abs().mean().item()
    assert losses[-1] < 0.5 * losses[0]
    assert losses[-1] < 0.75 * best_constant, "the fit must use the input, not only learn the mean colour"
