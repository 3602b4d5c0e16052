import torch
import torch.nn.functional as F

from pipeline.models.registry import build_model


def test_last_three_channels_are_the_bicubic_input_for_global_residual_learning():
    torch.manual_seed(0)
    net = build_model("vdsr", 3, {"depth": 3, "n_feats": 8})
    lr = torch.rand(1, 3, 7, 9)
    features = net(lr)
    assert net.feature_channels == 8 + 3
    assert torch.equal(features[:, -3:], F.interpolate(lr, scale_factor=3, mode="bicubic", align_corners=False))


def test_depth_counts_the_paper_layers_including_the_one_the_head_replaces():
    convs = [m for m in build_model("vdsr", 2).modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 19
    assert sum(p.numel() for p in build_model("vdsr", 2).parameters()) == 1_792 + 18 * 36_928
