import torch
import torch.nn.functional as F

from pipeline.models.lapsrn_arch import bilinear_kernel
from pipeline.models.registry import build_model


def test_bilinear_kernel_is_the_x2_interpolation_filter():
    assert torch.allclose(bilinear_kernel(4)[0], torch.tensor([0.0625, 0.1875, 0.1875, 0.0625]))
    assert bilinear_kernel(4).sum() == 4


def test_image_channels_start_as_bilinear_upsampling():
    torch.manual_seed(0)
    net = build_model("lapsrn", 2, {"n_feats": 8, "depth": 1})
    lr = torch.rand(1, 3, 9, 11)
    image = net(lr)[:, -3:]
    bilinear = F.interpolate(lr, scale_factor=2, mode="bilinear", align_corners=False)
    torch.testing.assert_close(image[..., 1:-1, 1:-1], bilinear[..., 1:-1, 1:-1])


def test_one_pyramid_level_per_factor_of_two_with_the_paper_depth():
    for scale, levels, depth in [(2, 1, 10), (4, 2, 10), (8, 3, 5)]:
        net = build_model("lapsrn", scale)
        assert len(net.feature_levels) == levels
        assert len(net.residuals) == levels - 1
        assert sum(isinstance(m, torch.nn.Conv2d) for m in net.feature_levels[0]) == depth
