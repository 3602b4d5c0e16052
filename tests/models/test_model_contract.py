"""Every registered network honours the registry contract (pipeline/models/registry.py)."""

import pytest
import torch

from pipeline.errors import ConfigError
from pipeline.models.registry import MODELS, build_model
from pipeline.models.summary import SMALL_CONFIGS

NAMES = sorted(MODELS)
UNSUPPORTED = {("lapsrn", 3)}
CASES = [(name, scale) for name in NAMES for scale in (2, 3, 4, 8)]


def test_all_families_are_registered():
    assert {"srcnn", "vdsr", "espcn", "fsrcnn", "edsr", "lapsrn", "dbpn", "rcan", "swinir", "swinir_light"} <= set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_every_network_has_a_recommended_small_config(name):
    assert name in SMALL_CONFIGS


@pytest.mark.parametrize("name,scale", [c for c in CASES if c not in UNSUPPORTED])
def test_output_is_an_hr_feature_map_for_an_odd_sized_input(name, scale):
    torch.manual_seed(0)
    net = build_model(name, scale, SMALL_CONFIGS[name])
    lr = torch.rand(2, 3, 13, 17)
    features = net(lr)
    assert net.scale == scale
    assert features.shape == (2, net.feature_channels, 13 * scale, 17 * scale)
    assert torch.isfinite(features).all()


@pytest.mark.parametrize("name,scale", sorted(UNSUPPORTED))
def test_unsupported_scale_is_a_config_error(name, scale):
    with pytest.raises(ConfigError, match=f"'{name}'.*x{scale}.*not supported"):
        build_model(name, scale, SMALL_CONFIGS[name])


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("scale", [1, 0, 2.0, True])
def test_scale_that_is_not_an_integer_above_one_is_a_config_error(name, scale):
    with pytest.raises(ConfigError, match="not supported"):
        build_model(name, scale)


@pytest.mark.parametrize("name", ["edsr", "lapsrn", "dbpn", "rcan", "swinir"])
def test_scale_five_is_rejected_where_the_upsampler_cannot_make_it(name):
    with pytest.raises(ConfigError, match="not supported"):
        build_model(name, 5)


@pytest.mark.parametrize("name", NAMES)
def test_unknown_argument_is_a_config_error_that_lists_the_allowed_ones(name):
    with pytest.raises(ConfigError, match=r"no argument 'n_layerz'; allowed: .*"):
        build_model(name, 2, {"n_layerz": 3})


WIDTH_ARGUMENT = {"srcnn": "n1", "vdsr": "n_feats", "espcn": "n1", "fsrcnn": "d", "edsr": "n_feats",
                  "lapsrn": "n_feats", "dbpn": "n_feats", "rcan": "n_feats", "swinir": "embed_dim",
                  "swinir_light": "embed_dim"}


@pytest.mark.parametrize("name,width", sorted(WIDTH_ARGUMENT.items()))
def test_nonpositive_width_is_a_config_error(name, width):
    with pytest.raises(ConfigError, match=f"'{width}' must be a positive integer"):
        build_model(name, 2, {width: 0})


@pytest.mark.parametrize("name", NAMES)
def test_gradients_reach_every_parameter(name):
    torch.manual_seed(0)
    net = build_model(name, 2, SMALL_CONFIGS[name])
    head = torch.nn.Conv2d(net.feature_channels, 3, 3, padding=1)
    lr, hr = torch.rand(1, 3, 9, 11), torch.rand(1, 3, 18, 22)
    (head(net(lr)) - hr).abs().mean().backward()
    starved = [n for n, p in net.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not starved
