import pytest
import torch
import torch.nn.functional as F

from pipeline.models.registry import build_model
from pipeline.models.swinir_arch import SwinLayer, WindowAttention, from_windows, shifted_window_mask, to_windows

BIAS_TABLES_LIGHT = 4 * 6 * (2 * 8 - 1) ** 2 * 6  # 4 RSTBs x 6 layers x 225 offsets x 6 heads = 32,400


def rgb_tail_params(n_feats: int) -> int:
    return 3 * n_feats * 9 + 3


def test_classical_swinir_has_the_published_parameter_count():
    """SwinIR classical SR (Liang et al. 2021): 6 RSTBs x 6 layers, 180 channels, 6 heads, window 8.

    Published: 11,900K parameters at x4 (SwinIR paper, its comparison of model sizes at x4, with RCAN
    at 15,592K). It counts the relative position bias tables (48,600) and the RGB tail (1,731), which is the
    objective's head here.
    """
    with torch.device("meta"):
        x4, x2 = build_model("swinir", 4), build_model("swinir", 2)
    total = sum(p.numel() for p in x4.parameters()) + rgb_tail_params(x4.feature_channels)
    assert total == 11_900_199 and round(total, -3) == 11_900_000
    assert total - sum(p.numel() for p in x2.parameters()) - rgb_tail_params(64) == 147_712  # one x2 stage


@pytest.mark.parametrize("scale,published", [(2, 878_000), (3, 886_000), (4, 897_000)])
def test_lightweight_swinir_has_the_published_parameter_count_without_bias_tables(scale, published):
    """Lightweight SwinIR: 4 RSTBs x 6 layers, 60 channels, window 8, one-step upsampler to RGB.

    Published: 878K (x2), 886K (x3), 897K (x4) parameters (SwinIR paper, its lightweight SR table).
    These figures are reproduced by the modules' parameters without the relative position bias
    tables (32,400 of them); with them the x2 network has 910,152. Its one-step upsampler ends in
    the 3 RGB maps, so the paper's model is this network alone (the head adds a 3x3 conv on top).
    """
    with torch.device("meta"):
        net = build_model("swinir_light", scale)
    params = dict(net.named_parameters())
    tables = sum(p.numel() for name, p in params.items() if name.endswith("relative_position_bias"))
    assert tables == BIAS_TABLES_LIGHT
    assert round(sum(p.numel() for p in params.values()) - tables, -3) == published
    assert net.feature_channels == 3


def test_windows_round_trip_and_one_window_is_full_attention():
    torch.manual_seed(0)
    x = torch.rand(2, 8, 12, 5)
    assert torch.equal(from_windows(to_windows(x, 4), 4, 8, 12), x)
    attention = WindowAttention(dim=6, heads=2, window=3)
    tokens = torch.rand(1, 9, 6)
    q, k, v = attention.qkv(tokens).view(1, 9, 3, 2, 3).permute(2, 0, 3, 1, 4)
    bias = attention.relative_position_bias[attention.bias_index].permute(2, 0, 1)
    expected = F.scaled_dot_product_attention(q, k, v, attn_mask=bias).transpose(1, 2).reshape(1, 9, 6)
    assert torch.allclose(attention(tokens, None), attention.proj(expected), atol=1e-6)


def test_relative_position_bias_depends_only_on_the_offset_between_tokens():
    attention = WindowAttention(dim=4, heads=1, window=3)
    index = attention.bias_index.view(3, 3, 3, 3)  # (y1, x1, y2, x2)
    assert index[0, 0, 1, 1] == index[1, 1, 2, 2] != index[1, 1, 0, 0]
    assert index.unique().numel() == (2 * 3 - 1) ** 2


def test_shifted_windows_never_mix_tokens_the_cyclic_shift_brought_together():
    """A token's output in a shifted layer does not change when an image region it does not touch
    in the unshifted image changes: the mask keeps the wrapped-around border out of its window."""
    torch.manual_seed(0)
    layer = SwinLayer(dim=4, heads=1, window=4, shift=2, mlp_ratio=1.0).eval()
    mask = shifted_window_mask(8, 8, 4, 2, torch.device("cpu"))
    assert mask.shape == (4, 16, 16) and set(mask.unique().tolist()) == {0.0, -100.0}
    x = torch.rand(1, 8, 8, 4)
    changed = x.clone()
    changed[:, 0, 0] += 1.0  # the top-left token; after the shift it shares a window with the bottom-right ones
    with torch.no_grad():
        assert torch.equal(layer(x)[:, 7, 7], layer(changed)[:, 7, 7])
        assert not torch.equal(layer(x)[:, 1, 1], layer(changed)[:, 1, 1])


def test_input_is_padded_to_whole_windows_and_the_features_cropped_back():
    torch.manual_seed(0)
    net = build_model("swinir", 2, {"depths": [2], "embed_dim": 8, "num_heads": [2], "window_size": 4,
                                    "out_feats": 8}).eval()
    lr = torch.rand(1, 3, 8, 8)
    with torch.no_grad():
        whole = net(lr)
        cropped = net(lr[..., :7, :6])
    assert cropped.shape == (1, 8, 14, 12)
    assert torch.isfinite(cropped).all()
    assert not torch.equal(whole[..., :14, :12], cropped)  # the padding is a reflection, not the real pixels


def test_heads_must_divide_the_embedding():
    from pipeline.errors import ConfigError

    with pytest.raises(ConfigError, match="'embed_dim' 10 must be divisible"):
        build_model("swinir", 2, {"embed_dim": 10, "num_heads": [3, 3], "depths": [1, 1]})
    with pytest.raises(ConfigError, match="one entry per RSTB"):
        build_model("swinir_light", 2, {"depths": [1, 1], "num_heads": [2]})
