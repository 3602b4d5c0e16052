import pytest
import torch
from torch import nn

from pipeline.models.registry import build_model


def rgb_tail_params(n_feats: int) -> int:
    return 3 * n_feats * 9 + 3


def test_edsr_baseline_x2_has_the_published_parameter_count():
    """Lim et al. 2017: EDSR baseline (16 blocks x 64) x2 has 1.37M parameters with its RGB tail.

    By hand: head 1,792 + 16 blocks x 73,856 + body conv 36,928 + upsampler 147,712 + tail 1,731.
    """
    net = build_model("edsr", 2)
    total = sum(p.numel() for p in net.parameters()) + rgb_tail_params(net.feature_channels)
    assert total == 1_792 + 16 * 73_856 + 36_928 + 147_712 + 1_731 == 1_369_859
    assert round(total / 1e6, 2) == 1.37


@pytest.mark.parametrize("scale,published_millions", [(3, 1.55), (4, 1.52)])
def test_edsr_baseline_x3_x4_match_the_published_sizes(scale, published_millions):
    net = build_model("edsr", scale)
    total = sum(p.numel() for p in net.parameters()) + rgb_tail_params(net.feature_channels)
    assert round(total / 1e6, 2) == published_millions


def test_x8_cascades_three_x2_pixel_shuffles():
    net = build_model("edsr", 8, {"n_blocks": 1, "n_feats": 8})
    shuffles = [m for m in net.modules() if isinstance(m, nn.PixelShuffle)]
    assert [s.upscale_factor for s in shuffles] == [2, 2, 2]


def test_mean_shift_is_a_fixed_buffer_outside_parameters_and_checkpoints():
    net = build_model("edsr", 2, {"n_blocks": 1, "n_feats": 8})
    assert torch.allclose(net.rgb_mean.flatten(), torch.tensor([0.4488, 0.4371, 0.4040]))
    assert "rgb_mean" not in net.state_dict()
    assert all(p.shape != net.rgb_mean.shape for p in net.parameters())


def test_residual_blocks_are_identity_when_their_second_conv_is_zero():
    torch.manual_seed(0)
    net = build_model("edsr", 2, {"n_blocks": 3, "n_feats": 8, "res_scale": 0.1})
    x = torch.rand(1, 8, 5, 5)
    block = net.body[0]
    nn.init.zeros_(block.body[2].weight)
    nn.init.zeros_(block.body[2].bias)
    assert torch.equal(block(x), x)


def test_res_scale_scales_the_residual_branch():
    torch.manual_seed(0)
    net = build_model("edsr", 2, {"n_blocks": 1, "n_feats": 8, "res_scale": 0.1})
    block, x = net.body[0], torch.rand(1, 8, 5, 5)
    torch.testing.assert_close(block(x) - x, 0.1 * block.body(x))
