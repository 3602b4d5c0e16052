"""Ordered initialisation of class heads: logits of a discretised Gaussian around a linear read-out.

This project's own addition, not the seed papers' (they use PyTorch's default initialisation).

A class head is a conv giving ``K`` logits per colour channel ``c``; class ``k`` stands for the
value ``v_k``. With a linear read-out ``r_c(x) = m + a_c . x + b_c`` of the features ``x`` (``m``
the centre of the values, ``a_c, b_c`` a conv initialised as PyTorch initialises any conv), set

    z_{c,k}(x) = ((v_k - m)(r_c(x) - m) - (v_k - m)^2 / 2) / s^2
              = -(v_k - r_c(x))^2 / (2 s^2) + (r_c(x) - m)^2 / (2 s^2),

i.e. weights ``(v_k - m) a_c / s^2`` and biases ``((v_k - m) b_c - (v_k - m)^2 / 2) / s^2``. The
last term is the same for every ``k``, so ``softmax_k z`` is the Gaussian ``N(r_c(x), s^2)``
discretised on the values: classes are ordered from step 0, the argmax is the value nearest the
read-out, and on an equally spaced grid the softmax mean equals ``r_c(x)`` up to
``exp(-2 pi^2 (s / step)^2)`` (Poisson summation) while ``r_c`` is a few ``s`` inside the range.
A temperature ``T`` keeps the mean and scales the width to ``s sqrt(T)``. The cross-entropy of
such logits against class ``t`` is ``(v_t - r)^2 / (2 s^2) + log(sum_k exp(-(v_k - r)^2 / (2 s^2)))``:
an L2 on the read-out with weight ``1 / (2 s^2)`` (FCS balances its L2 branch with that weight).
Loss, architecture and the number of trainable parameters are unchanged; only the start differs.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn

HeadInit = Literal["ordered", "plain"]
HEAD_INITS = ("ordered", "plain")


class ClassConv2d(nn.Conv2d):
    """A conv to class logits that runs in its weights' dtype (float32) even under autocast.

    Ordered logits reach ``(K - 1)^2 / (8 s^2)`` in class steps (8128 for 256 classes, ``s = 1``),
    where bfloat16 keeps steps of 32: the softmax would be noise. Measured on CPU, the
    bfloat16 decode of an ordered CS head in the bf16 test was off by up to 0.028 (7 levels) without this.
    """

    def forward(self, x: Tensor) -> Tensor:
        with torch.autocast(x.device.type, enabled=False):
            return super().forward(x.to(self.weight.dtype))


def check_head_init(init: str, sigma: float) -> None:
    if init not in HEAD_INITS:
        raise ValueError(f"init must be 'ordered' or 'plain', got '{init}'")
    if sigma <= 0:
        raise ValueError(f"init_sigma must be > 0, got {sigma}")


@torch.no_grad()
def ordered_init_(head: nn.Conv2d, values: Tensor, sigma: float) -> None:
    """Overwrite ``head`` (``C * K`` output channels, ``K = len(values)``) with ordered logits.

    ``sigma`` is the Gaussian's width in the values' units; the read-out is a fresh conv of
    ``head``'s shape with ``C`` outputs, initialised as PyTorch does (drawn from the global RNG).
    """
    classes = values.numel()
    channels = head.out_channels // classes
    readout = nn.Conv2d(head.in_channels, channels, head.kernel_size, padding=head.padding)
    centred = (values.double() - (values.max().double() + values.min().double()) / 2).view(1, classes)
    scale = centred / sigma**2  # [1, K]
    weight = scale.view(1, classes, 1, 1, 1) * readout.weight.double().unsqueeze(1)  # [C, K, F, kh, kw]
    bias = scale * readout.bias.double().view(channels, 1) - centred.square() / (2 * sigma**2)
    head.weight.copy_(weight.reshape_as(head.weight))
    head.bias.copy_(bias.reshape_as(head.bias))



def initialise_class_head(head: nn.Conv2d, values: Tensor, init: HeadInit, sigma_steps: float) -> None:
    """``ordered``: ``ordered_init_`` with ``s = sigma_steps`` class steps of the (equally spaced) ``values``;
    ``plain``: leave PyTorch's initialisation, as the papers do."""
    check_head_init(init, sigma_steps)
    if init == "ordered":
        step = float(values.max() - values.min()) / (values.numel() - 1)
        ordered_init_(head, values, sigma_steps * step)
