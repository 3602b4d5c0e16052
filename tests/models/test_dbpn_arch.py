import pytest
import torch
from torch import nn

from pipeline.errors import ConfigError
from pipeline.models.registry import build_model


def bottlenecks(net: nn.Module) -> int:
    return sum(isinstance(m, nn.Conv2d) and m.kernel_size == (1, 1) for m in [*net.ups.modules(), *net.downs.modules()])


@pytest.mark.parametrize("dense", [True, False])
def test_features_concatenate_every_up_projection(dense):
    torch.manual_seed(0)
    net = build_model("dbpn", 2, {"stages": 3, "n_feats": 4, "n_init": 8, "dense": dense})
    assert len(net.ups) == 3 and len(net.downs) == 2
    assert net(torch.rand(1, 3, 5, 6)).shape == (1, 12, 10, 12)


def test_dense_units_fuse_earlier_outputs_through_1x1_bottlenecks():
    dense = build_model("dbpn", 2, {"stages": 4, "n_feats": 4, "n_init": 8, "dense": True})
    plain = build_model("dbpn", 2, {"stages": 4, "n_feats": 4, "n_init": 8, "dense": False})
    assert bottlenecks(plain) == 0
    assert bottlenecks(dense) == 2 + 2  # up units 3, 4 and down units 2, 3
    assert [dense.ups[t].bottleneck[0].in_channels for t in (2, 3)] == [8, 12]


@pytest.mark.parametrize("scale,geometry", [(2, (6, 2, 2)), (3, (7, 3, 2)), (4, (8, 4, 2)), (8, (12, 8, 2))])
def test_projection_kernels_follow_the_paper(scale, geometry):
    up = build_model("dbpn", scale, {"stages": 1, "n_feats": 4, "n_init": 4}).ups[0].up[0]
    assert (up.kernel_size[0], up.stride[0], up.padding[0]) == geometry


def test_dense_must_be_a_boolean():
    with pytest.raises(ConfigError, match="'dense' must be true or false"):
        build_model("dbpn", 2, {"dense": "no"})
