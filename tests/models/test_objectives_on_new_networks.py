"""Every objective of the default study trains RCAN and SwinIR: the networks end in HR features, so any
head fits on them (the seed papers' claim that their losses plug into any network)."""

import pytest
import torch
import torch.nn.functional as F

from pipeline.config import LossConfig
from pipeline.models.registry import build_model
from pipeline.objectives.registry import build_objective
from pipeline.params_file import load_params
from tests.models.test_model_overfit import textured_patch
from tests.models.tiny_networks import TINY_NETWORKS

STUDY = load_params().sweep.objectives
NETWORKS = ("rcan", "swinir", "swinir_light")


@pytest.mark.parametrize("objective_name", sorted(STUDY))
@pytest.mark.parametrize("network", NETWORKS)
def test_every_study_objective_lowers_its_loss_on_the_network(network, objective_name):
    torch.manual_seed(0)
    hr = textured_patch()
    lr = F.avg_pool2d(hr, 2)
    net = build_model(network, 2, TINY_NETWORKS[network])
    objective = build_objective(LossConfig.model_validate(STUDY[objective_name]["loss"]), net.feature_channels, 2,
                                total_iterations=12)
    trained = [*net.parameters(), *objective.sr_parameters()]
    optimizer = torch.optim.Adam(trained, lr=3e-3)
    totals = []
    for iteration in range(12):
        out = objective(net(lr))
        if objective.has_aux_step:
            objective.aux_step(objective.decode(out).detach(), hr, iteration)
        total = objective.loss(out, hr, iteration)["total"]
        optimizer.zero_grad()
        total.backward()
        assert all(p.grad is None or torch.isfinite(p.grad).all() for p in trained)
        optimizer.step()
        totals.append(total.item())
    assert min(totals[-3:]) < totals[0]
    assert objective.predict(net(lr)).shape == hr.shape
