"""Fine-grained dynamic loss: classify intensity bins, predict an anchor width, regress inside it.

Seed paper: "Fine-Grained Dynamic Loss for Accurate Single-Image Super-Resolution".

Per pixel and channel, the 0..255 intensity range is cut into ``K = bins`` equal bins of width
``256 / K``. The head has three branches: bin logits (``3K``), anchor half-width logits
(``3(A + 1)``, ``A = max_width``) and a regression offset (3). With ``k*`` the true bin, ``k^``
the predicted bin and ``a^`` the predicted half-width, the anchor area is the bins
``[k^ - a^, k^ + a^ + 1)``, as intensities ``[lo, hi)`` clipped to ``[0, 256)``, and

    SR  = (lo + sigmoid(offset) (hi - lo)) / 255
    loss = bins_weight  * CE(bin logits, k*)
         + width_weight * CE(width logits, min(|k* - k^|, A))
         + regress_weight * Charbonnier(SR, HR) over pixels whose true value lies in [lo, hi).

Where the paper is silent we chose: ``k^`` and ``a^`` are the argmax predictions (no gradient
flows through them, so the regression trains only the offset branch and the features); the
regression is a mean over the pixels inside their anchor area (zero when none is), so its scale
does not shrink while the classifiers are still poor; outside the anchor area the offset gets no
gradient because no position inside a wrong interval is right; ``decode`` clamps to [0, 1]
because the top bin reaches 256/255.

``decode: anchor`` is the paper's decode above; ``decode: expectation`` is the softmax mean of the
bin centres, ``sum_k p_k (k + 1/2) (256 / K) / 255``, which ignores the width and offset branches
(the loss is the same for both; ``decodes`` lists them so one checkpoint can be scored under each).
The bin head starts ``ordered`` around a linear read-out (``pipeline.objectives.ordered_head``,
this project's addition; ``init_sigma`` in bins) or ``plain`` (PyTorch's default, as the paper).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
from torch import Tensor, nn

from pipeline.objectives.base import Objective
from pipeline.objectives.class_heads import chunked_cross_entropy, decode_classes
from pipeline.objectives.ordered_head import ClassConv2d, HeadInit, check_head_init, initialise_class_head
from pipeline.objectives.registry import register_objective


class FineGrainedOutput(NamedTuple):
    """Head output: bin logits ``[B, 3K, H, W]``, width logits ``[B, 3(A+1), H, W]``, offsets ``[B, 3, H, W]``."""

    bins: Tensor
    width: Tensor
    offset: Tensor


class _FineGrainedHead(nn.Module):
    def __init__(self, in_channels: int, centres: Tensor, max_width: int, kernel_size: int,
                 init: HeadInit, init_sigma: float):
        super().__init__()
        pad = kernel_size // 2
        self.bins = ClassConv2d(in_channels, 3 * centres.numel(), kernel_size, padding=pad)
        initialise_class_head(self.bins, centres, init, init_sigma)
        self.width = nn.Conv2d(in_channels, 3 * (max_width + 1), kernel_size, padding=pad)
        self.offset = nn.Conv2d(in_channels, 3, kernel_size, padding=pad)

    def forward(self, features: Tensor) -> FineGrainedOutput:
        return FineGrainedOutput(self.bins(features), self.width(features), self.offset(features))


def _argmax_classes(logits: Tensor, classes: int) -> Tensor:
    """``[B, 3*classes, H, W]`` logits -> ``[B, 3, H, W]`` class indices."""
    batch, _, height, width = logits.shape
    return logits.view(batch, 3, classes, height, width).max(dim=2).indices  # 4x faster than argmax on CPU


@register_objective("fine_grained")
class FineGrainedDynamicLoss(Objective):
    """Bins + dynamic anchor width + masked regression (see the module docstring).

    Options:
        bins: ``K``, a power of two from 2 to 256.
        max_width: ``A``, the largest half-width class.
        bins_weight, width_weight, regress_weight: the weights of the three terms (logged ``bins``,
            ``width``, ``regress``).
        charbonnier_eps: ``eps`` of the regression's Charbonnier loss.
        kernel_size: 1 or 3, for all three branches.
        decode: ``expectation`` or ``anchor`` (the paper's).
        init, init_sigma: the bin head's start, ``ordered`` (a Gaussian of ``init_sigma`` levels) or ``plain``
            (the paper's).
    """

    decodes = ("anchor", "expectation")

    def __init__(
        self,
        in_channels: int,
        scale: int,
        terms: dict[str, Any] | None = None,
        total_iterations: int = 1,
        bins: int = 16,
        max_width: int = 2,
        bins_weight: float = 1.0,
        width_weight: float = 1.0,
        regress_weight: float = 1.0,
        charbonnier_eps: float = 1e-3,
        kernel_size: int = 3,
        decode: str = "expectation",
        init: HeadInit = "ordered",
        init_sigma: float = 1.0,
    ):
        if bins < 2 or bins > 256 or bins & (bins - 1):
            raise ValueError(f"bins must be a power of two between 2 and 256, got {bins}")
        if max_width < 0 or kernel_size not in (1, 3) or charbonnier_eps <= 0:
            raise ValueError(f"need max_width >= 0, kernel_size 1 or 3, charbonnier_eps > 0; "
                             f"got {max_width}, {kernel_size}, {charbonnier_eps}")
        if decode not in self.decodes:
            raise ValueError(f"decode must be 'anchor' or 'expectation', got '{decode}'")
        check_head_init(init, init_sigma)
        self.bins, self.max_width, self.kernel_size = bins, max_width, kernel_size
        self.decode_mode, self.init, self.init_sigma = decode, init, float(init_sigma)
        self.bin_size = 256 / bins
        self.bins_weight, self.width_weight = float(bins_weight), float(width_weight)
        self.regress_weight = float(regress_weight)
        self.charbonnier_eps = float(charbonnier_eps)
        super().__init__(in_channels, scale, terms, total_iterations)
        self.register_buffer("centres", self._bin_centres(), persistent=False)

    def _bin_centres(self) -> Tensor:
        """``(k + 1/2) (256 / K) / 255`` for ``k = 0 .. K - 1``."""
        return (torch.arange(self.bins, dtype=torch.float32) + 0.5) * self.bin_size / 255

    def make_head(self, in_channels: int) -> nn.Module:
        return _FineGrainedHead(in_channels, self._bin_centres(), self.max_width, self.kernel_size,
                                self.init, self.init_sigma)

    def _anchor(self, out: FineGrainedOutput) -> tuple[Tensor, Tensor, Tensor]:
        """Predicted bin and anchor interval ``[lo, hi)`` on the 0..256 intensity scale, each ``[B, 3, H, W]``."""
        center = _argmax_classes(out.bins, self.bins)
        half = _argmax_classes(out.width, self.max_width + 1)
        dtype = torch.promote_types(out.offset.dtype, torch.float32)
        lo = ((center - half) * self.bin_size).clamp(0, 256).to(dtype)
        hi = ((center + half + 1) * self.bin_size).clamp(0, 256).to(dtype)
        return center, lo, hi

    @staticmethod
    def _regressed(offset: Tensor, lo: Tensor, hi: Tensor) -> Tensor:
        """``(lo + sigmoid(offset) (hi - lo)) / 255`` in the intervals' (at least float32) precision."""
        return (lo + torch.sigmoid(offset.to(lo.dtype)) * (hi - lo)) / 255

    def decode(self, out: FineGrainedOutput, block_elements: int | None = None) -> Tensor:
        if self.decode_mode == "expectation":
            return decode_classes(out.bins, self.centres, "expectation", block_elements=block_elements)
        _, lo, hi = self._anchor(out)
        return self._regressed(out.offset, lo, hi).clamp(0, 1)

    def own_terms(self, out: FineGrainedOutput, hr: Tensor, iteration: int) -> dict[str, tuple[float, Tensor]]:
        intensity = hr.clamp(0, 1) * 255
        true_bin = (intensity / self.bin_size).long().clamp(0, self.bins - 1)
        predicted_bin, lo, hi = self._anchor(out)
        width_target = (true_bin - predicted_bin).abs().clamp(max=self.max_width)
        inside = ((intensity >= lo) & (intensity < hi)).to(hr.dtype)
        regressed = self._regressed(out.offset, lo, hi)
        charbonnier = torch.sqrt((regressed - hr).square() + self.charbonnier_eps**2)
        regress = (charbonnier * inside).sum() / inside.sum().clamp(min=1)
        return {
            "bins": (self.bins_weight, chunked_cross_entropy(out.bins, true_bin, self.bins)),
            "width": (self.width_weight, chunked_cross_entropy(out.width, width_target, self.max_width + 1)),
            "regress": (self.regress_weight, regress),
        }
