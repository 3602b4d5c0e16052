import torch
import torch.nn.functional as F

from pipeline.models.registry import build_model


def test_default_is_the_9_5_5_network_with_64_and_32_maps_ending_before_reconstruction():
    net = build_model("srcnn", 2)
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [(c.in_channels, c.out_channels, c.kernel_size) for c in convs] == [(3, 64, (9, 9)), (64, 32, (5, 5))]
    assert net.feature_channels == 32


def test_network_sees_the_bicubic_upsampled_image():
    torch.manual_seed(0)
    net = build_model("srcnn", 2, {"n1": 4, "n2": 4})
    lr = torch.rand(1, 3, 6, 6)
    expected = net.body(F.interpolate(lr, scale_factor=2, mode="bicubic", align_corners=False))
    assert torch.equal(net(lr), expected)
