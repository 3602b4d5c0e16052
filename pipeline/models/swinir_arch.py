"""SwinIR: Liang et al., "SwinIR: Image Restoration Using Swin Transformer", ICCV Workshops 2021.

Shallow features ``f0 = conv(LR - mean)``; deep features ``f = f0 + conv(LN(RSTB_K(...RSTB_1(LN(f0)))))``,
each residual Swin Transformer block (RSTB) being ``x + conv(STL_D(...STL_1(x)))``; a Swin Transformer
layer (STL) is ``x = x + W-MSA(LN(x))``, ``x = x + MLP(LN(x))`` with multi-head self-attention inside
non-overlapping ``M x M`` windows (plus a learned relative position bias), the windows of every
second layer shifted by ``M / 2`` (Liu et al., Swin Transformer, ICCV 2021). The LR image is
reflect-padded to a multiple of ``M`` and the HR features cropped back, as the official test code does.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pipeline.models.base import check_positive, check_scale, is_power_of_two
from pipeline.models.edsr_arch import DIV2K_RGB_MEAN, PixelShuffleUpsampler
from pipeline.models.registry import register_model

MASKED = -100.0  # added to the logits of token pairs from different regions of a shifted window


def to_windows(x: Tensor, size: int) -> Tensor:
    """``[B, H, W, C]`` -> ``[B * H/size * W/size, size * size, C]``, window by window in raster order."""
    b, h, w, c = x.shape
    x = x.view(b, h // size, size, w // size, size, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, size * size, c)


def from_windows(windows: Tensor, size: int, h: int, w: int) -> Tensor:
    """Inverse of ``to_windows``."""
    c = windows.shape[-1]
    x = windows.view(-1, h // size, w // size, size, size, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, h, w, c)


def shifted_window_mask(h: int, w: int, size: int, shift: int, device: torch.device) -> Tensor:
    """``[windows, size^2, size^2]``: 0 where two tokens of a shifted window come from the same image
    region (the cyclic shift brings far-apart borders together), ``MASKED`` elsewhere."""
    labels = torch.zeros(1, h, w, 1, device=device)
    bounds = (slice(0, -size), slice(-size, -shift), slice(-shift, None))
    for label, (rows, cols) in enumerate((r, c) for r in bounds for c in bounds):
        labels[:, rows, cols, :] = label
    regions = to_windows(labels, size).squeeze(-1)
    different = regions.unsqueeze(1) != regions.unsqueeze(2)
    return torch.zeros(different.shape, device=device).masked_fill(different, MASKED)


class WindowAttention(nn.Module):
    """``softmax(q k^T / sqrt(d) + B + mask) v`` per window and head, ``B`` the relative position bias."""

    def __init__(self, dim: int, heads: int, window: int):
        super().__init__()
        self.heads, self.window = heads, window
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.relative_position_bias = nn.Parameter(torch.zeros((2 * window - 1) ** 2, heads))
        nn.init.trunc_normal_(self.relative_position_bias, std=0.02)
        ys, xs = torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij")
        coords = torch.stack([ys.flatten(), xs.flatten()])  # [2, N]
        offsets = coords[:, :, None] - coords[:, None, :] + window - 1  # [2, N, N], each in [0, 2M - 2]
        self.register_buffer("bias_index", offsets[0] * (2 * window - 1) + offsets[1], persistent=False)

    def forward(self, x: Tensor, mask: Tensor | None) -> Tensor:
        windows, tokens, dim = x.shape
        q, k, v = self.qkv(x).view(windows, tokens, 3, self.heads, dim // self.heads).permute(2, 0, 3, 1, 4)
        logits = (q * (dim // self.heads) ** -0.5) @ k.transpose(-2, -1)
        logits = logits + self.relative_position_bias[self.bias_index].permute(2, 0, 1)
        if mask is not None:
            count = mask.shape[0]
            logits = (logits.view(windows // count, count, self.heads, tokens, tokens)
                      + mask[None, :, None]).view(windows, self.heads, tokens, tokens)
        out = (logits.softmax(dim=-1) @ v).transpose(1, 2).reshape(windows, tokens, dim)
        return self.proj(out)


class SwinLayer(nn.Module):
    """STL on ``[B, H, W, C]`` tokens: windowed attention (cyclically shifted by ``shift``), then an MLP."""

    def __init__(self, dim: int, heads: int, window: int, shift: int, mlp_ratio: float):
        super().__init__()
        self.window, self.shift = window, shift
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, heads, window)
        self.norm2 = nn.LayerNorm(dim)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, x: Tensor) -> Tensor:
        _, h, w, _ = x.shape
        y = self.norm1(x)
        mask = None
        if self.shift:
            y = torch.roll(y, (-self.shift, -self.shift), dims=(1, 2))
            mask = shifted_window_mask(h, w, self.window, self.shift, x.device)
        y = from_windows(self.attn(to_windows(y, self.window), mask), self.window, h, w)
        if self.shift:
            y = torch.roll(y, (self.shift, self.shift), dims=(1, 2))
        x = x + y
        return x + self.mlp(self.norm2(x))


class ResidualSwinBlock(nn.Module):
    """RSTB: ``x + conv(STLs(x))``, on ``[B, H, W, C]`` tokens."""

    def __init__(self, dim: int, depth: int, heads: int, window: int, mlp_ratio: float):
        super().__init__()
        self.layers = nn.Sequential(*(SwinLayer(dim, heads, window, window // 2 if i % 2 else 0, mlp_ratio)
                                      for i in range(depth)))
        self.conv = nn.Conv2d(dim, dim, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv(self.layers(x).permute(0, 3, 1, 2)).permute(0, 2, 3, 1)


@register_model("swinir")
class SwinIR(nn.Module):
    """SwinIR for classical SR; defaults are the paper's x2-x8 model: 6 RSTBs of 6 layers, 180
    channels, 6 heads, 8 x 8 windows, MLP ratio 2, then ``conv + LeakyReLU`` to ``out_feats`` (64)
    maps and a pixel-shuffle upsampler (x2, x3, x4, x8). The last conv to RGB is the objective's head;
    the DIV2K mean is a fixed buffer, added back by the head's bias.

    Options:
        depths: Swin Transformer layers of each RSTB (one entry per RSTB).
        embed_dim: channels of the transformer.
        num_heads: attention heads of each RSTB (one entry per RSTB; each divides embed_dim).
        window_size: side of the attention windows (the input is padded to a multiple of it).
        mlp_ratio: hidden width of each MLP as a multiple of embed_dim.
        out_feats: channels of the HR features.
    """

    direct_upsampler = False

    def __init__(self, scale: int, depths: Sequence[int] = (6, 6, 6, 6, 6, 6), embed_dim: int = 180,
                 num_heads: Sequence[int] = (6, 6, 6, 6, 6, 6), window_size: int = 8, mlp_ratio: float = 2.0,
                 out_feats: int = 64):
        super().__init__()
        if self.direct_upsampler:
            self.scale = check_scale(scale)
        else:
            self.scale = check_scale(scale, "3 or a power of two (2, 4, 8)", lambda s: s == 3 or is_power_of_two(s))
        check_positive(embed_dim=embed_dim, window_size=window_size, out_feats=out_feats,
                       **{f"depths[{i}]": d for i, d in enumerate(depths)},
                       **{f"num_heads[{i}]": n for i, n in enumerate(num_heads)})
        if len(depths) != len(num_heads) or not depths:
            raise ValueError(f"'depths' and 'num_heads' need one entry per RSTB each (got {list(depths)} and "
                             f"{list(num_heads)})")
        if any(embed_dim % heads for heads in num_heads):
            raise ValueError(f"'embed_dim' {embed_dim} must be divisible by every entry of 'num_heads' "
                             f"{list(num_heads)}")
        if not mlp_ratio > 0:
            raise ValueError(f"'mlp_ratio' must be positive (got {mlp_ratio!r})")
        self.window = window_size
        self.feature_channels = out_feats
        self.register_buffer("rgb_mean", torch.tensor(DIV2K_RGB_MEAN).view(1, 3, 1, 1), persistent=False)
        self.extract = nn.Conv2d(3, embed_dim, 3, padding=1)
        self.embed_norm = nn.LayerNorm(embed_dim)
        self.blocks = nn.Sequential(*(ResidualSwinBlock(embed_dim, depth, heads, window_size, mlp_ratio)
                                      for depth, heads in zip(depths, num_heads)))
        self.norm = nn.LayerNorm(embed_dim)
        self.conv_after_body = nn.Conv2d(embed_dim, embed_dim, 3, padding=1)
        self.upsample = self.make_upsampler(embed_dim, out_feats, self.scale)

    @staticmethod
    def make_upsampler(embed_dim: int, out_feats: int, scale: int) -> nn.Module:
        return nn.Sequential(nn.Conv2d(embed_dim, out_feats, 3, padding=1), nn.LeakyReLU(inplace=True),
                             PixelShuffleUpsampler(out_feats, scale))

    def forward(self, lr: Tensor) -> Tensor:
        h, w = lr.shape[-2:]
        pad_h, pad_w = -h % self.window, -w % self.window
        mode = "reflect" if pad_h < h and pad_w < w else "replicate"
        shallow = self.extract(F.pad(lr - self.rgb_mean, (0, pad_w, 0, pad_h), mode=mode))
        tokens = self.norm(self.blocks(self.embed_norm(shallow.permute(0, 2, 3, 1))))
        deep = self.conv_after_body(tokens.permute(0, 3, 1, 2))
        return self.upsample(shallow + deep)[..., : h * self.scale, : w * self.scale]


@register_model("swinir_light")
class SwinIRLight(SwinIR):
    """Lightweight SwinIR: 4 RSTBs of 6 layers, 60 channels, 6 heads, and the one-step upsampler
    ``PixelShuffle(conv(f, out_feats * s^2))`` (any integer scale). In the paper ``out_feats`` is 3,
    the RGB image itself; here those 3 maps are the HR features and the head adds a 3x3 conv on top.

    Options:
        depths: Swin Transformer layers of each RSTB (one entry per RSTB).
        embed_dim: channels of the transformer.
        num_heads: attention heads of each RSTB (one entry per RSTB; each divides embed_dim).
        window_size: side of the attention windows (the input is padded to a multiple of it).
        mlp_ratio: hidden width of each MLP as a multiple of embed_dim.
        out_feats: channels of the HR features (3 in the paper: the one-step upsampler's RGB).
    """

    direct_upsampler = True

    def __init__(self, scale: int, depths: Sequence[int] = (6, 6, 6, 6), embed_dim: int = 60,
                 num_heads: Sequence[int] = (6, 6, 6, 6), window_size: int = 8, mlp_ratio: float = 2.0,
                 out_feats: int = 3):
        super().__init__(scale, depths, embed_dim, num_heads, window_size, mlp_ratio, out_feats)

    @staticmethod
    def make_upsampler(embed_dim: int, out_feats: int, scale: int) -> nn.Module:
        return nn.Sequential(nn.Conv2d(embed_dim, out_feats * scale**2, 3, padding=1), nn.PixelShuffle(scale))
