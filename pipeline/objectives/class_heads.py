"""Class heads shared by CS, FCS and fine-grained: chunked cross-entropy, class decoding, quantiser.

- ``chunked_cross_entropy``: the mean cross-entropy over a class axis of ``[B, C*K, H, W]`` logits,
  block by block, with the softmax computed once per step;
- ``decode_classes``: logits to values (``argmax``, softmax ``expectation``, ``annealed``);
- ``ResidualQuantizer``: signed residuals <-> 256 classes (FCS);
- ``in_row_blocks``: a 3x3 head and its decode over blocks of rows (``pointwise_head`` blocks a 1x1 one).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.autograd.function import once_differentiable

LEVELS = 256
DEFAULT_CHUNK_ELEMENTS = 1 << 22
DECODE_BLOCK_ELEMENTS = 1 << 19
PREDICT_BLOCK_ELEMENTS = 1 << 22
PIXEL_MAJOR_BLOCK_ELEMENTS = 1 << 20
DecodeMode = Literal["argmax", "expectation", "annealed"]
DECODE_MODES = ("argmax", "expectation", "annealed")
EXP_FLOORS = {torch.float32: -87.33654022216797, torch.float64: -708.3964185322641}
_BELOW_EXP_FLOORS = {  # the largest input below each floor
    dtype: torch.nextafter(torch.tensor(floor, dtype=dtype), torch.tensor(-math.inf, dtype=dtype)).item()
    for dtype, floor in EXP_FLOORS.items()
}


def exp_normal_(x: Tensor) -> Tensor:
    """``x.exp_()``, with every entry whose exp is not a normal float set to 0 without computing it.

    On CPU ``torch.exp`` is 20-80x slower where its result underflows (below ``2^-126`` in float32,
    ``2^-1022`` in float64; ``bench/exp_underflow.py``), and ordered class logits put most classes
    there. ``EXP_FLOORS`` holds the least ``x`` whose exp is normal (tested on this build): entries below
    it become 0 before the exp (``exp(0)`` is fast) and are multiplied by a 0/1 mask after it (a float
    mask: ``masked_fill_`` with a bool one is 20x slower). With subnormals flushed (as ``fit``,
    ``evaluate`` and ``upscale`` run) this is bitwise ``x.exp_()``, NaN and -inf included (tested);
    unflushed, an entry below ``1.2e-38`` is 0 instead of subnormal. Differentiable like ``exp_``;
    other devices and dtypes call ``exp_`` as is.
    """
    floor = EXP_FLOORS.get(x.dtype)
    if floor is None or x.device.type != "cpu":
        return x.exp_()
    keep = torch.ge(x.detach(), floor, out=torch.empty_like(x, requires_grad=False))
    exps = F.threshold_(x, _BELOW_EXP_FLOORS[x.dtype], 0.0).exp_()
    return exps * keep if exps.requires_grad else exps.mul_(keep)


def _blocks(rows: int, classes: int, spatial: int, budget: int) -> Iterator[tuple[slice, slice]]:
    """Slices ``(rows, pixels)`` covering ``[R, K, S]`` with at most ``budget`` elements each.

    Whole rows (contiguous ``K x S`` slabs) are preferred; a row larger than the budget is split
    along its pixels.
    """
    per_row = classes * spatial
    if per_row <= budget:
        step_r, step_s = budget // per_row, spatial
    else:
        step_r, step_s = 1, max(1, budget // classes)
    for r in range(0, rows, step_r):
        for s in range(0, spatial, step_s):
            yield slice(r, r + step_r), slice(s, s + step_s)


def _cross_entropy_pass(logits: Tensor, target: Tensor, classes: int, chunk_elements: int,
                        gradient: Tensor | None) -> Tensor:
    """Summed cross-entropy, block by block; also writes ``softmax - onehot`` into ``gradient`` if given."""
    rows, spatial = target.shape[0] * target.shape[1], target.shape[2] * target.shape[3]
    x = logits.reshape(rows, classes, spatial)
    t = target.reshape(rows, 1, spatial)
    g = gradient.view(rows, classes, spatial) if gradient is not None else None
    dtype = torch.promote_types(logits.dtype, torch.float32)
    total = torch.zeros((), dtype=dtype, device=logits.device)
    for r, s in _blocks(rows, classes, spatial, _budget(logits.numel(), chunk_elements)):
        block = x[r, :, s].to(dtype)
        index = t[r, :, s]
        peak = block.amax(dim=1, keepdim=True)
        into = g[r, :, s] if g is not None and g.dtype == dtype else None  # the gradient's block: no copy
        exps = exp_normal_(torch.sub(block, peak, out=into))
        sums = exps.sum(dim=1, keepdim=True)
        total += (peak + sums.log() - block.gather(1, index)).sum()
        if g is not None:
            exps /= sums
            exps.scatter_add_(1, index, torch.full(index.shape, -1.0, dtype=dtype, device=exps.device))
            if into is None:
                g[r, :, s] = exps
    return total


class _ChunkedCrossEntropy(torch.autograd.Function):
    """Mean cross-entropy over a class axis, computed block by block (see ``chunked_cross_entropy``)."""

    @staticmethod
    def forward(ctx: Any, logits: Tensor, target: Tensor, classes: int, chunk_elements: int) -> Tensor:
        gradient = None
        if ctx.needs_input_grad[0]:
            gradient = torch.empty_like(logits, memory_format=torch.contiguous_format)
        total = _cross_entropy_pass(logits, target, classes, chunk_elements, gradient)
        ctx.save_for_backward(logits, target)
        ctx.classes, ctx.chunk_elements, ctx.count, ctx.gradient = classes, chunk_elements, target.numel(), gradient
        return total / ctx.count

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad_output: Tensor) -> tuple[Tensor, None, None, None]:
        gradient, ctx.gradient = ctx.gradient, None
        if gradient is None:  # a second backward through a retained graph: recompute
            logits, target = ctx.saved_tensors
            gradient = torch.empty_like(logits, memory_format=torch.contiguous_format)
            _cross_entropy_pass(logits, target, ctx.classes, ctx.chunk_elements, gradient)
        return gradient.mul_(grad_output.to(gradient.dtype) / ctx.count), None, None, None


def _budget(numel: int, chunk_elements: int) -> int:
    """Block size: at most ``chunk_elements`` and an eighth of the logits, so temporaries stay small."""
    return max(1, min(chunk_elements, numel // 8))


def chunked_cross_entropy(
    logits: Tensor, target: Tensor, classes: int, chunk_elements: int = DEFAULT_CHUNK_ELEMENTS
) -> Tensor:
    """``mean_{b,c,h,w} [logsumexp_k z_{b,c,k,h,w} - z_{b,c,t,h,w}]`` for ``logits [B, C*K, H, W]``.

    ``target`` is ``[B, C, H, W]`` (integers in ``[0, K)``); channel ``c`` owns logits
    ``c*K .. c*K + K - 1``. The forward pass visits blocks of at most ``chunk_elements`` elements
    (and at most an eighth of the logits); when the logits need a gradient, the same pass writes
    ``softmax - onehot`` (as ``exp(z - max z) / sum``, faster on CPU than ``torch.softmax`` over a
    middle axis) into one gradient-sized tensor that backward scales in place, so the softmax is
    computed once per step and the memory beyond the logits is that tensor plus one block. Blocks
    are computed in at least float32 and so is the result, as autocast does for
    ``F.cross_entropy``, to which it is equal (tested).
    """
    if logits.dim() != 4 or logits.shape[1] % classes:
        raise ValueError(f"logits must be [B, C*{classes}, H, W], got {tuple(logits.shape)}")
    expected = (logits.shape[0], logits.shape[1] // classes, *logits.shape[2:])
    if tuple(target.shape) != expected:
        raise ValueError(f"target must be {expected}, got {tuple(target.shape)}")
    return _ChunkedCrossEntropy.apply(logits, target.long(), classes, chunk_elements)


def decode_classes(logits: Tensor, values: Tensor, mode: DecodeMode, temperature: float = 1.0,
                   block_elements: int | None = None) -> Tensor:
    """Per pixel and channel, turn ``K`` logits into a value: ``values[argmax]`` or ``sum_k p_k values_k``.

    ``p = softmax(logits)`` for ``expectation``, ``softmax(logits / temperature)`` for ``annealed``.
    ``logits`` is ``[B, C*K, H, W]``, ``values`` ``[K]``; returns ``[B, C, H, W]``, computed in at
    least float32 even under autocast (a half-precision mean over 256 levels is off by ~0.5/255).
    The softmax is written out (``sum_k e_k v_k / sum_k e_k``, ``e = exp(z - max z)``, exponentiated
    in place), normalised once per pixel instead of per class (PyTorch's CPU softmax over a middle
    axis is ~4x slower). On CPU it runs over blocks of pixels of at most ``block_elements`` logits
    (None: ``DECODE_BLOCK_ELEMENTS``, channels-last ``PIXEL_MAJOR_BLOCK_ELEMENTS``), so the temporaries
    stay in cache: 8x faster than whole-tile passes for a 512 x 512 tile; a graph of fixed shape
    (``pipeline.export``) asks for one block with a ``block_elements`` beyond any image.
    """
    classes = values.numel()
    batch, height, width = logits.shape[0], logits.shape[2], logits.shape[3]
    channels = logits.shape[1] // classes
    if logits.permute(0, 2, 3, 1).is_contiguous():
        budget = PIXEL_MAJOR_BLOCK_ELEMENTS if block_elements is None else block_elements
        return _decode_pixel_major(logits, values, mode, temperature, budget).permute(0, 3, 1, 2)
    grouped = logits.reshape(batch, channels, classes, height * width)
    if mode == "argmax":
        return values[grouped.max(dim=2).indices].view(batch, channels, height, width)  # argmax is 4x slower on CPU
    pixels = height * width
    if logits.device.type == "cpu":
        budget = DECODE_BLOCK_ELEMENTS if block_elements is None else block_elements
        pixels = max(1, budget // (batch * channels * classes))
    with torch.autocast(logits.device.type, enabled=False):
        dtype = torch.promote_types(logits.dtype, torch.float32)
        row = values.to(dtype).view(1, 1, 1, classes)
        blocks = []
        for block in grouped.split(pixels, dim=3):
            scaled = block.to(dtype) / temperature if mode == "annealed" else block.to(dtype)
            weights = exp_normal_(scaled - scaled.detach().amax(dim=2, keepdim=True))
            blocks.append(torch.matmul(row, weights) / weights.sum(dim=2, keepdim=True))
        return torch.cat(blocks, dim=3).view(batch, channels, height, width)


def _decode_pixel_major(logits: Tensor, values: Tensor, mode: DecodeMode, temperature: float,
                        block_elements: int) -> Tensor:
    """``decode_classes`` for channels-last logits, returned as ``[B, H, W, C]``.

    Each pixel's ``C*K`` logits are contiguous, so the class axis is the innermost one and every
    value is one fused ``softmax`` row plus a dot product (``decode_rows``): two passes over the
    logits instead of five strided ones. On CPU rows go ``block_elements`` logits at a time, so the
    probabilities stay in cache.
    """
    classes = values.numel()
    batch, height, width = logits.shape[0], logits.shape[2], logits.shape[3]
    rows = logits.permute(0, 2, 3, 1).reshape(-1, classes)
    step = max(1, block_elements // classes) if logits.device.type == "cpu" else rows.shape[0]
    with torch.autocast(logits.device.type, enabled=False):
        decoded = [decode_rows(block, values, mode, temperature) for block in rows.split(step)]
        return torch.cat(decoded).view(batch, height, width, -1)


def decode_rows(rows: Tensor, values: Tensor, mode: DecodeMode, temperature: float) -> Tensor:
    """``[N, K]`` logits -> ``[N]`` values: ``values[argmax]`` or ``softmax(rows / T) @ values``, in at least float32.

    ``torch.softmax`` over the innermost axis needs no guard against underflowing ``exp``: its fused
    kernel does not slow down there (``bench/exp_underflow.py``).
    """
    if mode == "argmax":
        return values[rows.argmax(dim=1)]
    dtype = torch.promote_types(rows.dtype, torch.float32)
    rows = rows.to(dtype) / temperature if mode == "annealed" else rows.to(dtype)
    return torch.softmax(rows, dim=1) @ values.to(dtype)


def in_row_blocks(compute: Callable[[Tensor], Tensor], features: Tensor) -> Tensor:
    """``compute(features)`` for a function of at most 3x3 support, over blocks of rows with one row of
    context on each side, on channels-last features; each block holds about ``PREDICT_BLOCK_ELEMENTS`` logits."""
    batch, _, height, width = features.shape
    features = features.contiguous(memory_format=torch.channels_last)
    rows = max(1, PREDICT_BLOCK_ELEMENTS // (batch * 3 * LEVELS * width))
    parts = []
    for top in range(0, height, rows):
        bottom = min(top + rows, height)
        above, below = max(0, top - 1), min(height, bottom + 1)
        parts.append(compute(features[:, :, above:below])[:, :, top - above: bottom - above])
    return torch.cat(parts, dim=2)


class ResidualQuantizer(nn.Module):
    """Signed residuals in ``[-tau, tau]`` <-> ``LEVELS`` classes, uniform or mu-law.

    Uniform: ``q = round((clip(r, -tau, tau) + tau) / (2 tau) * 255)``, so the reconstruction
    error inside ``+-tau`` is at most ``tau / 255``. mu-law: ``y = sign(r) log(1 + mu |r| / tau) /
    log(1 + mu)`` is quantised uniformly on [-1, 1] and mapped back by ``r = sign(y) tau ((1 + mu)^|y| - 1) / mu``,
    which spends more classes on small residuals. Values beyond ``tau`` clip to the end classes.
    """

    def __init__(self, kind: Literal["uniform", "mulaw"], tau: float, mu: float):
        super().__init__()
        if kind not in ("uniform", "mulaw"):
            raise ValueError(f"quantizer must be 'uniform' or 'mulaw', got '{kind}'")
        if tau <= 0 or (kind == "mulaw" and mu <= 0):
            raise ValueError(f"the quantizer needs tau > 0 and mu > 0, got tau={tau}, mu={mu}")
        self.kind, self.tau, self.mu = kind, float(tau), float(mu)
        grid = torch.linspace(-1.0, 1.0, LEVELS, dtype=torch.float64)
        self.register_buffer("values", self._expand(grid).float(), persistent=False)

    def _compress(self, r: Tensor) -> Tensor:
        y = r.clamp(-self.tau, self.tau) / self.tau
        if self.kind == "mulaw":
            y = torch.sign(y) * torch.log1p(self.mu * y.abs()) / math.log1p(self.mu)
        return y

    def _expand(self, y: Tensor) -> Tensor:
        if self.kind == "mulaw":
            y = torch.sign(y) * torch.expm1(y.abs() * math.log1p(self.mu)) / self.mu
        return y * self.tau

    def quantize(self, residual: Tensor) -> Tensor:
        """Class index (int64) of each residual."""
        return torch.round((self._compress(residual) + 1) * ((LEVELS - 1) / 2)).long().clamp(0, LEVELS - 1)

    def dequantize(self, index: Tensor) -> Tensor:
        return self.values[index]

    def max_error(self) -> float:
        """Largest reconstruction error for residuals inside ``[-tau, tau]`` (half a class step)."""
        if self.kind == "uniform":
            return self.tau / (LEVELS - 1)
        return self.tau * math.log1p(self.mu) * (1 + self.mu) / self.mu / (LEVELS - 1)
