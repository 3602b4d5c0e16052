"""Perceptual and texture losses on (random-weight) VGG features: zeros, hand-computed Gram matrices, checkpoints."""

import pytest
import torch

from pipeline.errors import ConfigError, PipelineError
from pipeline.objectives.base import Objective
from pipeline.objectives.pretrained import VGGFeatures
from pipeline.objectives.registry import build_term
from pipeline.objectives.texture_loss import layer_stride, patch_gram


def pair(seed: int = 0, size: int = 32):
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(2, 3, size, size, generator=generator), torch.rand(2, 3, size, size, generator=generator)


@pytest.mark.parametrize(
    ("name", "options"),
    [
        ("perceptual", {}),
        ("perceptual", {"layers": {"relu2_2": 0.5, "conv4_1": 1.0}, "criterion": "l2"}),
        ("texture", {}),
        ("texture", {"patch_size": None, "arch": "vgg16"}),
    ],
)
def test_zero_for_identical_images_and_positive_otherwise(random_vgg_hub, name, options):
    sr, hr = pair()
    term = build_term(name, options)
    assert term(hr, hr).item() == 0.0
    assert term(sr, hr).item() > 0


def test_perceptual_is_the_weighted_sum_of_layer_distances(random_vgg_hub):
    sr, hr = pair(1)
    layers = {"relu1_2": 0.25, "conv3_1": 2.0}
    term = build_term("perceptual", {"layers": layers})
    found_sr, found_hr = VGGFeatures(layers)(sr), VGGFeatures(layers)(hr)
    expected = sum(w * (found_sr[n] - found_hr[n]).abs().mean() for n, w in layers.items())
    torch.testing.assert_close(term(sr, hr), expected)


def test_vgg_weights_are_not_in_the_checkpoint(random_vgg_hub):
    objective = Objective(8, 2, terms={"perceptual": 1.0, "texture": {"weight": 0.1, "layers": {"relu2_1": 1.0}}})
    assert all(not key.startswith("terms.") for key in objective.state_dict())
    assert all(not name.startswith("terms.") for name, _ in objective.named_parameters())


def test_layer_strides():
    assert [layer_stride(n) for n in ("conv1_1", "relu2_1", "relu3_1", "pool3", "conv5_4")] == [1, 2, 4, 8, 16]


def test_gram_matrix_by_hand():
    features = torch.tensor([[1.0, 2.0, 3.0, 4.0], [0.0, 1.0, 0.0, 1.0]]).view(1, 2, 2, 2)
    # F F^T = [[30, 6], [6, 2]], divided by C * N = 2 * 4
    torch.testing.assert_close(patch_gram(features, None), torch.tensor([[[[3.75, 0.75], [0.75, 0.25]]]]))
    # one position per patch: f f^T / 2, e.g. the last position (4, 1)
    assert patch_gram(features, 1).shape == (1, 4, 2, 2)
    torch.testing.assert_close(patch_gram(features, 1)[0, 3], torch.tensor([[8.0, 2.0], [2.0, 0.5]]))


def test_gram_ignores_order_inside_a_patch_but_not_across_patches():
    features = torch.rand(1, 4, 4, 4, generator=torch.Generator().manual_seed(2))
    inside = features.clone()
    inside[..., :2, :2] = features[..., :2, :2].flip(-1)
    across = features.clone()
    across[..., :, :4] = features[..., :, [0, 2, 1, 3]]
    torch.testing.assert_close(patch_gram(inside, 2), patch_gram(features, 2))
    assert not torch.allclose(patch_gram(across, 2), patch_gram(features, 2))
    torch.testing.assert_close(patch_gram(across, None), patch_gram(features, None))


def test_bad_options_are_errors(random_vgg_hub):
    with pytest.raises(ConfigError, match="conv9_9"):
        build_term("perceptual", {"layers": {"conv9_9": 1.0}})
    with pytest.raises(ConfigError, match="criterion"):
        build_term("perceptual", {"criterion": "cosine"})
    with pytest.raises(ConfigError, match="stride"):
        build_term("texture", {"layers": {"relu5_1": 1.0}, "patch_size": 8})
    with pytest.raises(PipelineError, match="patch_size"):
        build_term("texture", {"patch_size": 48})(*pair())
