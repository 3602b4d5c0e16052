"""Cross-entropy SR: per-pixel classification of intensities (CS) and its frequency split (FCS).

Seed paper: "Super-Resolution with Cross-Entropy Loss Adapted to High Frequencies".

- CS: the head predicts 256 logits per pixel and channel; the loss is the cross-entropy against
  ``round(255 HR)``; decode is the ``argmax`` class, the ``expectation`` under the softmax, or the
  ``annealed`` expectation under ``softmax(logits / T)``.
- FCS: a low-pass filter ``f`` splits ``HR = f(HR) + (HR - f(HR))``; a regression branch learns the
  low part with L2, a 256-class branch learns the signed high residual (quantised uniformly or by
  mu-law within ``+-tau``) with cross-entropy; ``SR = low + dequantised high``.

Every class head starts ordered by default (``init: ordered``, see ``pipeline.objectives.ordered_head``,
this project's addition); ``init: plain`` keeps PyTorch's initialisation, as the paper does.

A 1x1 class head (the default) returns its logits deferred (``PointwiseLogits``): training computes
head and cross-entropy together block by block (``pointwise_cross_entropy``), inference head and decode
(``pointwise_class_predict``), both in ``pipeline.objectives.pointwise_head``; a 3x3 head's logits go
through ``chunked_cross_entropy`` and ``decode_classes`` (``pipeline.objectives.class_heads``, shared
with fine-grained).
"""

from __future__ import annotations

from typing import Any, Literal, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pipeline.errors import ConfigError
from pipeline.objectives.base import Objective
from pipeline.objectives.class_heads import (
    DECODE_MODES,
    DEFAULT_CHUNK_ELEMENTS,
    LEVELS,
    DecodeMode,
    ResidualQuantizer,
    chunked_cross_entropy,
    decode_classes,
    in_row_blocks,
)
from pipeline.objectives.lowpass import LowPass
from pipeline.objectives.ordered_head import ClassConv2d, HeadInit, check_head_init, initialise_class_head
from pipeline.objectives.pointwise_head import PointwiseLogits, class_logits, pointwise_class_predict
from pipeline.objectives.registry import register_objective

ClassOutput = Tensor | PointwiseLogits
"""Class logits ``[B, 3*256, H, W]``, or, for a 1x1 head, the deferred ``PointwiseLogits``."""


def _class_head(in_channels: int, values: Tensor, kernel_size: int, init: HeadInit, init_sigma: float) -> nn.Conv2d:
    """A conv to ``3 * len(values)`` logits, initialised ``ordered`` (around a linear read-out) or ``plain``."""
    if kernel_size not in (1, 3):
        raise ValueError(f"kernel_size must be 1 or 3, got {kernel_size}")
    head = ClassConv2d(in_channels, 3 * values.numel(), kernel_size, padding=kernel_size // 2)
    initialise_class_head(head, values, init, init_sigma)
    return head


class ClassDecoding:
    """What CS and FCS share: the decode options, the class head's output and loss, the blocked ``predict``."""

    decodes = DECODE_MODES

    def _set_decoding(self, decode: str, temperature: float, terms: dict | None) -> None:
        if decode not in DECODE_MODES:
            raise ValueError(f"decode must be 'argmax', 'expectation' or 'annealed', got '{decode}'")
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        if decode == "argmax" and terms:
            raise ConfigError(
                "decode 'argmax' is not differentiable, so loss.terms would not train; "
                "use decode 'expectation' or 'annealed', or set loss.terms to {}"
            )
        self.decode_mode, self.temperature = decode, float(temperature)

    def use_decode(self, name: str) -> None:
        """As ``Objective.use_decode``, refusing ``argmax`` while image terms need a gradient."""
        super().use_decode(name)
        self._set_decoding(name, self.temperature, dict(self.terms))

    def class_head(self) -> tuple[nn.Conv2d, Tensor]:
        """The conv that gives the class logits and the values of its classes."""
        raise NotImplementedError

    def class_output(self, features: Tensor) -> ClassOutput:
        """The class head on ``features``: deferred ``PointwiseLogits`` for a 1x1 head, else its logits."""
        conv, _ = self.class_head()
        return PointwiseLogits(conv, features) if conv.kernel_size == (1, 1) else conv(features)

    def decode_class_output(self, out: ClassOutput, block_elements: int | None) -> Tensor:
        """``decode_classes`` of the class head's output with this objective's decode options."""
        _, values = self.class_head()
        return decode_classes(class_logits(out), values, self.decode_mode, self.temperature, block_elements)

    def class_cross_entropy(self, out: ClassOutput, target: Tensor) -> Tensor:
        """The mean cross-entropy of the class head against ``target`` ``[B, 3, H, W]``: fused with a 1x1
        head (``pointwise_cross_entropy``) unless image terms need the logits for their decode."""
        if isinstance(out, PointwiseLogits) and not self.terms:
            return out.cross_entropy(target, self.chunk_elements)
        return chunked_cross_entropy(class_logits(out), target, LEVELS, self.chunk_elements)

    def add_regressed(self, features: Tensor, decoded: Tensor) -> Tensor:
        """The SR image from the decoded classes: ``decoded`` itself, or a regression branch plus it."""
        return decoded

    def predict(self, features: Tensor) -> Tensor:
        """``decode(head(features))`` in blocks: of pixels for a 1x1 class head, of rows for a 3x3 one.

        1x1: ``pointwise_class_predict`` (each pixel once, the logits of ``HEAD_BLOCK_PIXELS`` pixels at
        a time). 3x3: blocks of rows with one row of context on each side, whose rows equal those of the
        whole; only one block's 768 logits per pixel exist at a time (about ``PREDICT_BLOCK_ELEMENTS``:
        a 1024 x 1024 output needs about 16 MiB of float32 logits at a time instead of 3 GiB). The
        features are made channels-last, so the head writes each pixel's logits contiguously and
        ``decode_classes`` takes its fused pixel-major path.
        """
        conv, values = self.class_head()
        if conv.kernel_size == (1, 1):
            decoded = pointwise_class_predict(conv, features, values, self.decode_mode, self.temperature)
            return self.add_regressed(features, decoded)
        return in_row_blocks(lambda block: self.decode(self(block)), features)


def _intensity_levels() -> Tensor:
    """The CS class values ``k / 255``."""
    return torch.arange(LEVELS, dtype=torch.float32) / (LEVELS - 1)


@register_objective("cs")
class CrossEntropySR(ClassDecoding, Objective):
    """CS: ``loss = ce_weight * CE(logits, round(255 HR))`` over 256 intensity classes per channel.

    Head: one ``kernel_size`` conv to ``3 * 256`` logits (1x1 by default: a 3x3 conv to 768
    channels would cost more than the whole EDSR-baseline trunk per pixel), ``init``
    ``ordered`` (a Gaussian of ``init_sigma`` levels around a linear read-out) or ``plain``.

    Options:
        decode: ``argmax`` (the class / 255), ``expectation`` (``sum_k softmax_k * k/255``) or ``annealed``
            (``softmax(logits / temperature)``, then the expectation).
        temperature: of the ``annealed`` decode.
        ce_weight: weight of the cross-entropy in the total.
        kernel_size: side of the head's convolution.
        init, init_sigma: the class head's start, ``ordered`` (a Gaussian of ``init_sigma`` levels) or ``plain``
            (the paper's).
        chunk_elements: block size of the cross-entropy (docs/losses.md).
    """

    def __init__(
        self,
        in_channels: int,
        scale: int,
        terms: dict[str, Any] | None = None,
        total_iterations: int = 1,
        decode: DecodeMode = "expectation",
        temperature: float = 0.5,
        ce_weight: float = 1.0,
        kernel_size: int = 1,
        init: HeadInit = "ordered",
        init_sigma: float = 1.0,
        chunk_elements: int = DEFAULT_CHUNK_ELEMENTS,
    ):
        self._set_decoding(decode, temperature, terms)
        check_head_init(init, init_sigma)
        self.ce_weight, self.kernel_size, self.chunk_elements = float(ce_weight), kernel_size, chunk_elements
        self.init, self.init_sigma = init, float(init_sigma)
        super().__init__(in_channels, scale, terms, total_iterations)
        self.register_buffer("levels", _intensity_levels(), persistent=False)

    def make_head(self, in_channels: int) -> nn.Module:
        return _class_head(in_channels, _intensity_levels(), self.kernel_size, self.init, self.init_sigma)

    def forward(self, features: Tensor) -> ClassOutput:
        return self.class_output(features)

    def decode(self, out: ClassOutput, block_elements: int | None = None) -> Tensor:
        return self.decode_class_output(out, block_elements)

    def class_head(self) -> tuple[nn.Conv2d, Tensor]:
        return self.head, self.levels

    def own_terms(self, out: ClassOutput, hr: Tensor, iteration: int) -> dict[str, tuple[float, Tensor]]:
        target = torch.round(hr.clamp(0, 1) * (LEVELS - 1)).long()
        return {"ce": (self.ce_weight, self.class_cross_entropy(out, target))}


class SplitOutput(NamedTuple):
    """FCS head output: the low-frequency image ``[B, 3, H, W]`` and the high residual's class logits
    ``[B, 768, H, W]`` (deferred ``PointwiseLogits`` for a 1x1 head)."""

    low: Tensor
    high: ClassOutput


class _SplitHead(nn.Module):
    def __init__(self, in_channels: int, high_values: Tensor, kernel_size: int, init: HeadInit, init_sigma: float):
        super().__init__()
        self.low = nn.Conv2d(in_channels, 3, 3, padding=1)
        self.high = _class_head(in_channels, high_values, kernel_size, init, init_sigma)


@register_objective("fcs")
class FrequencyCrossEntropySR(ClassDecoding, Objective):
    """FCS: ``low_weight * ||low - f(HR)||^2 + high_weight * CE(high, Q(HR - f(HR)))``; ``SR = low + Q^-1(high)``.

    ``lowpass`` is ``{kind: gaussian, sigma, kernel_size}`` or ``{kind: bicubic, factor}`` (see
    ``pipeline.objectives.lowpass``); ``quantizer`` is ``uniform`` or ``mulaw`` (``mu``) within ``+-tau``.
    The high head starts ``ordered`` on the grid ``linspace(-tau, tau, 256)`` (for mu-law: the
    companded grid, scaled by ``tau``) or ``plain``.

    ``low_weight: balanced`` (default) is ``1 / (2 s^2)`` with ``s = init_sigma * 2 tau / 255``:
    the cross-entropy of a Gaussian-shaped softmax of width ``s`` is an L2 on its read-out with
    that weight (``pipeline.objectives.ordered_head``), so both branches pull on the shared
    network with the same curvature. The paper's unweighted sum is ``low_weight: 1``.

    Options:
        lowpass: ``f``: ``{kind: gaussian, sigma, kernel_size}`` or ``{kind: bicubic, factor}``; None is
            ``{kind: gaussian, sigma: 1.5, kernel_size: 9}``.
        quantizer: ``uniform``: 256 levels evenly over ``[-tau, tau]``; ``mulaw``: mu-law companded, then even.
        tau: residual range; values beyond it go to the end classes.
        mu: mu-law compression.
        decode, temperature: as CS, for the high branch.
        low_weight: weight of the low branch's L2; ``balanced`` is ``1 / (2 s^2)`` (docs/losses.md).
        high_weight: weight of the high branch's cross-entropy.
        kernel_size: side of the class branch's convolution.
        init, init_sigma: the class branch's start, as CS.
        chunk_elements: block size of the cross-entropy, as CS.
    """

    def __init__(
        self,
        in_channels: int,
        scale: int,
        terms: dict[str, Any] | None = None,
        total_iterations: int = 1,
        lowpass: dict[str, Any] | None = None,
        quantizer: Literal["uniform", "mulaw"] = "uniform",
        tau: float = 0.5,
        mu: float = 255.0,
        decode: DecodeMode = "expectation",
        temperature: float = 0.5,
        low_weight: float | Literal["balanced"] = "balanced",
        high_weight: float = 1.0,
        kernel_size: int = 1,
        init: HeadInit = "ordered",
        init_sigma: float = 1.0,
        chunk_elements: int = DEFAULT_CHUNK_ELEMENTS,
    ):
        self._set_decoding(decode, temperature, terms)
        check_head_init(init, init_sigma)
        quantizer_module = ResidualQuantizer(quantizer, tau, mu)  # validates tau before it divides
        if isinstance(low_weight, str) and low_weight != "balanced":
            raise ValueError(f"low_weight must be a number or 'balanced', got '{low_weight}'")
        self.low_weight = balanced_low_weight(tau, init_sigma) if low_weight == "balanced" else float(low_weight)
        self.high_weight = float(high_weight)
        self.kernel_size, self.chunk_elements = kernel_size, chunk_elements
        self.init, self.init_sigma, self.tau = init, float(init_sigma), float(tau)
        super().__init__(in_channels, scale, terms, total_iterations)
        self.lowpass = LowPass(**(lowpass or {}))
        self.quantizer = quantizer_module

    def make_head(self, in_channels: int) -> nn.Module:
        grid = torch.linspace(-self.tau, self.tau, LEVELS)
        return _SplitHead(in_channels, grid, self.kernel_size, self.init, self.init_sigma)

    def forward(self, features: Tensor) -> SplitOutput:
        return SplitOutput(self.head.low(features), self.class_output(features))

    def decode(self, out: SplitOutput, block_elements: int | None = None) -> Tensor:
        return out.low + self.decode_class_output(out.high, block_elements)

    def class_head(self) -> tuple[nn.Conv2d, Tensor]:
        return self.head.high, self.quantizer.values

    def add_regressed(self, features: Tensor, decoded: Tensor) -> Tensor:
        """``low + decoded``, the 3x3 low branch in the row blocks a 3x3 class head uses (the same bits)."""
        return in_row_blocks(self.head.low, features) + decoded

    def own_terms(self, out: SplitOutput, hr: Tensor, iteration: int) -> dict[str, tuple[float, Tensor]]:
        low_hr = self.lowpass(hr)
        target = self.quantizer.quantize(hr - low_hr)
        return {
            "low": (self.low_weight, F.mse_loss(out.low, low_hr)),
            "high": (self.high_weight, self.class_cross_entropy(out.high, target)),
        }


def balanced_low_weight(tau: float, init_sigma: float) -> float:
    """``1 / (2 s^2)``, ``s = init_sigma * 2 tau / 255``: the L2 weight the high branch's cross-entropy implies."""
    width = init_sigma * 2 * tau / (LEVELS - 1)
    return 1 / (2 * width**2)
