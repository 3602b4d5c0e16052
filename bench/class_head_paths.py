"""The conv path the fused 1x1 class head replaced, and one step's loss and gradients to compare the two.

Shared by ``bench/class_head_drift.py`` and ``tests/objectives/test_class_heads.py``: the fused head +
cross-entropy (``pipeline.objectives.pointwise_head``) sums in other orders than the conv's whole
logits followed by ``chunked_cross_entropy``, so the two are compared by ``relative_difference``.
"""

from __future__ import annotations

from torch import Tensor, nn

from pipeline.objectives import pointwise_head
from pipeline.objectives.base import Objective
from pipeline.objectives.class_heads import LEVELS, chunked_cross_entropy


def conv_path_cross_entropy(self, target: Tensor, chunk_elements: int) -> Tensor:
    """What ``PointwiseLogits.cross_entropy`` replaced: the conv's whole logits, then ``chunked_cross_entropy``."""
    return chunked_cross_entropy(self.logits(), target, LEVELS, chunk_elements)


class ConvPath:
    """Within: ``PointwiseLogits.cross_entropy`` is the conv path."""

    def __enter__(self) -> None:
        self.original = pointwise_head.PointwiseLogits.cross_entropy
        pointwise_head.PointwiseLogits.cross_entropy = conv_path_cross_entropy

    def __exit__(self, *exc) -> None:
        pointwise_head.PointwiseLogits.cross_entropy = self.original


def loss_and_gradients(net: nn.Module, objective: Objective, lr: Tensor, hr: Tensor) -> list[Tensor]:
    """One step's total loss and the gradient of every network and objective parameter that has one."""
    net.zero_grad(set_to_none=True)
    objective.zero_grad(set_to_none=True)
    total = objective.loss(objective(net(lr)), hr)["total"]
    total.backward()
    return [total.detach()] + [p.grad.clone() for p in [*net.parameters(), *objective.parameters()]
                               if p.grad is not None]


def relative_difference(fused: list[Tensor], conv: list[Tensor]) -> list[float]:
    """Per tensor (loss, then gradients): the largest |fused - conv| over the largest |conv|."""
    return [float((a - b).abs().max() / b.abs().max()) for a, b in zip(fused, conv)]
