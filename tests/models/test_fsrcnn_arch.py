import pytest
import torch

from pipeline.errors import ConfigError
from pipeline.models.registry import build_model


@pytest.mark.parametrize("scale", range(2, 10))
def test_deconvolution_gives_exactly_scale_times_the_input(scale):
    net = build_model("fsrcnn", scale, {"d": 4, "s": 2, "m": 1})
    assert net(torch.rand(1, 3, 5, 7)).shape == (1, 3, 5 * scale, 7 * scale)


def test_stride_wider_than_the_nine_pixel_kernel_is_a_config_error():
    with pytest.raises(ConfigError, match="from 2 to 9"):
        build_model("fsrcnn", 10)


def test_default_layers_are_fsrcnn_56_12_4():
    net = build_model("fsrcnn", 3)
    convs = [m for m in net.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d))]
    shapes = [(c.in_channels, c.out_channels, c.kernel_size[0]) for c in convs]
    assert shapes == [(3, 56, 5), (56, 12, 1), *[(12, 12, 3)] * 4, (12, 56, 1), (56, 3, 9)]
    assert convs[-1].stride == (3, 3)
