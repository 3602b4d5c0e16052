"""A 1x1 class head computed block by block: its logits never exist for a whole batch or image.

A 1x1 conv to ``C*K`` logits is, per pixel, ``z = W x + b`` (``W`` ``[C*K, F]``); on channels-last
features a block of ``P`` pixels is one ``addmm`` (``[P, F] @ [F, C*K]``) whose logits are pixel-major
(each pixel's ``K`` classes of channel ``c`` contiguous), so a softmax over the classes runs over
the innermost axis while the block is in cache.

- ``PointwiseLogits``: what CS and FCS return as head output for a 1x1 class head (the logits,
  deferred): ``logits()`` computes them with the conv, ``cross_entropy`` fuses head and loss;
- ``pointwise_cross_entropy``: the mean cross-entropy of ``conv(features)``, with the gradients of
  features, weights and bias accumulated block by block in the same pass;
- ``pointwise_class_predict``: ``decode_classes(conv(features))`` block by block, for inference.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn
from torch.autograd.function import once_differentiable

from pipeline.objectives.class_heads import (
    PREDICT_BLOCK_ELEMENTS,
    DecodeMode,
    decode_rows,
)

HEAD_BLOCK_PIXELS = 512


def _block_pixels(out_channels: int, device: torch.device, chunk_elements: int) -> int:
    """Pixels per block: ``HEAD_BLOCK_PIXELS`` on CPU (the block's logits stay in cache), bounded by
    ``chunk_elements`` logits; on other devices ``chunk_elements`` logits."""
    budget = max(1, chunk_elements // out_channels)
    return min(HEAD_BLOCK_PIXELS, budget) if device.type == "cpu" else budget


class _PointwiseCrossEntropy(torch.autograd.Function):
    """``mean CE(conv(features), target)`` for a 1x1 ``conv``; forward also computes every gradient."""

    @staticmethod
    def forward(ctx: Any, features: Tensor, weight: Tensor, bias: Tensor, target: Tensor,
                block_pixels: int) -> Tensor:
        out_channels, in_channels = weight.shape[0], weight.shape[1]
        channels = target.shape[1]
        classes = out_channels // channels
        pixels = features.permute(0, 2, 3, 1).reshape(-1, in_channels)  # a view when channels-last
        targets = target.permute(0, 2, 3, 1).reshape(-1, 1)  # pixel-major: [pixel, channel] rows
        matrix = weight.reshape(out_channels, in_channels)
        gradients = any(ctx.needs_input_grad[:3])
        grad_pixels = torch.empty_like(pixels, memory_format=torch.contiguous_format) if gradients else None
        grad_matrix = torch.zeros_like(matrix) if gradients else None
        grad_bias = torch.zeros_like(bias) if gradients else None
        total = torch.zeros((), dtype=weight.dtype, device=weight.device)
        logits = torch.empty(min(block_pixels, pixels.shape[0]), out_channels, dtype=weight.dtype,
                             device=weight.device)
        minus_one = torch.full((logits.shape[0] * channels, 1), -1.0, dtype=weight.dtype, device=weight.device)
        for start in range(0, pixels.shape[0], block_pixels):
            block = pixels[start:start + block_pixels]
            count = block.shape[0]
            z = torch.addmm(bias, block, matrix.t(), out=logits[:count])
            rows = z.view(count * channels, classes)
            index = targets[start * channels:(start + count) * channels]
            peak = rows.amax(dim=1, keepdim=True)  # amax: max with indices is 5x slower on CPU
            picked = rows.gather(1, index)
            probs = torch.softmax(rows, dim=1, out=rows)  # in place, row by row: 1.6x faster than a new block
            total += (peak - probs.amax(dim=1, keepdim=True).log() - picked).sum()  # largest p: 1 / sum exp(z - peak)
            if gradients:  # d CE / d z = softmax - onehot, then through the head's matmul
                grad = probs.scatter_add_(1, index, minus_one[:count * channels]).view(count, out_channels)
                torch.mm(grad, matrix, out=grad_pixels[start:start + count])
                torch.addmm(grad_matrix, grad.t(), block, out=grad_matrix)  # addmm_ would escape FlopCounterMode
                grad_bias += grad.sum(dim=0)
        ctx.count = target.numel()
        ctx.shape = features.shape
        ctx.save_for_backward(*(grad_pixels, grad_matrix, grad_bias) if gradients else ())
        return total / ctx.count

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad_output: Tensor) -> tuple[Tensor | None, ...]:
        grad_pixels, grad_matrix, grad_bias = ctx.saved_tensors
        scale = grad_output.to(grad_matrix.dtype) / ctx.count
        batch, in_channels, height, width = ctx.shape
        grad_features = (grad_pixels * scale).view(batch, height, width, in_channels).permute(0, 3, 1, 2)
        return grad_features, (grad_matrix * scale).view(*grad_matrix.shape, 1, 1), grad_bias * scale, None, None


def pointwise_cross_entropy(conv: nn.Conv2d, features: Tensor, target: Tensor, chunk_elements: int) -> Tensor:
    """``mean_{b,c,h,w} [logsumexp_k z_{b,c,k,h,w} - z_{b,c,t,h,w}]`` for ``z = conv(features)``, a 1x1 conv.

    Equal to ``chunked_cross_entropy(conv(features), target, K)`` up to float rounding (within 1e-6 of
    each tensor's largest entry, tested: ``tests/objectives/test_class_heads.py``), without its logits:
    per block of pixels (``_block_pixels``) one ``addmm`` gives the block's logits ``z``, one fused
    ``torch.softmax`` over the innermost axis gives ``p`` (its kernel does not slow down where ``exp``
    underflows, ``bench/exp_underflow.py``), the loss of a row is ``max z - log p_argmax - z_t`` (``p`` at
    the argmax is ``1 / sum exp(z - max z)``), and ``p - onehot`` becomes the block's gradients of
    features (``@ W``), weights (``+= ^T @ x``) and bias (``+= sum``) while it is in cache. Backward only
    scales them by ``grad_output / count``. So a training step writes no logits, no logits-sized
    gradient, and reads none back; the head's FLOPs are exactly those of the conv's forward and backward.
    Computed in the weights' dtype (float32: ``ClassConv2d``), autocast off.
    """
    if (conv.kernel_size, conv.stride, conv.padding, conv.groups) != ((1, 1), (1, 1), (0, 0), 1) or conv.bias is None:
        raise ValueError("pointwise_cross_entropy needs a plain 1x1 conv with a bias")
    if target.shape[0] != features.shape[0] or target.shape[2:] != features.shape[2:] or \
            conv.out_channels % target.shape[1]:
        raise ValueError(f"target must be [B, C, H, W] of features {tuple(features.shape)} with C dividing "
                         f"{conv.out_channels}, got {tuple(target.shape)}")
    with torch.autocast(features.device.type, enabled=False):
        block = _block_pixels(conv.out_channels, features.device, chunk_elements)
        return _PointwiseCrossEntropy.apply(features.to(conv.weight.dtype), conv.weight, conv.bias,
                                            target.long(), block)


class PointwiseLogits:
    """The logits ``conv(features)`` of a 1x1 class head, deferred: ``logits()`` computes them (once,
    for a decode), ``cross_entropy`` the loss without them."""

    def __init__(self, conv: nn.Conv2d, features: Tensor):
        self.conv, self.features = conv, features
        self._logits: Tensor | None = None

    def logits(self) -> Tensor:
        """``conv(features)``, ``[B, C*K, H, W]``, computed on the first call."""
        if self._logits is None:
            self._logits = self.conv(self.features)
        return self._logits

    def cross_entropy(self, target: Tensor, chunk_elements: int) -> Tensor:
        """``pointwise_cross_entropy(conv, features, target, chunk_elements)``."""
        return pointwise_cross_entropy(self.conv, self.features, target, chunk_elements)


def class_logits(out: Tensor | PointwiseLogits) -> Tensor:
    """The logits tensor of a head output, computing deferred ones."""
    return out.logits() if isinstance(out, PointwiseLogits) else out


@torch.no_grad()  # inference only: the blocks are written in place
def pointwise_class_predict(conv: nn.Conv2d, features: Tensor, values: Tensor, mode: DecodeMode,
                            temperature: float) -> Tensor:
    """``decode_classes(conv(features), values, ...)`` for a 1x1 ``conv``, ``[B, F, H, W]`` -> ``[B, C, H, W]``.

    Per block of ``HEAD_BLOCK_PIXELS`` pixels: the logits are one ``addmm`` (bias + channels-last
    features @ weights, ``[P, C*K]``), decoded by ``decode_rows`` while they are in cache; only one
    block's logits exist at a time, and no pixel is computed twice (a 1x1 head needs no context). On
    one CPU thread this is 0.8x the time of the conv on channels-last features plus the pixel-major decode, and
    bitwise equal to it (tested); ``bench/class_head_floor.py`` compares it with its arithmetic floor.
    """
    batch, channels, height, width = features.shape
    classes = values.numel()
    weight = conv.weight.view(conv.out_channels, channels).t()
    with torch.autocast(features.device.type, enabled=False):
        pixels = features.permute(0, 2, 3, 1).reshape(-1, channels).to(weight.dtype)
        on_cpu = features.device.type == "cpu"
        step = HEAD_BLOCK_PIXELS if on_cpu else max(1, PREDICT_BLOCK_ELEMENTS // conv.out_channels)
        dtype = torch.promote_types(weight.dtype, torch.float32)
        decoded = torch.empty(pixels.shape[0], conv.out_channels // classes, dtype=dtype, device=features.device)
        logits = torch.empty(min(step, pixels.shape[0]), conv.out_channels, dtype=weight.dtype, device=features.device)
        for start in range(0, pixels.shape[0], step):
            block = pixels[start:start + step]
            torch.addmm(conv.bias, block, weight, out=logits[:block.shape[0]])
            decoded[start:start + step] = decode_rows(logits[:block.shape[0]].view(-1, classes), values, mode,
                                                      temperature).view(block.shape[0], -1)
    return decoded.view(batch, height, width, -1).permute(0, 3, 1, 2)
