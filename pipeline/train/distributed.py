"""Data-parallel training over a ``torch.distributed`` process group (gloo on CPU, NCCL on GPU).

``fit`` uses these when a process group is initialised (Ray Train's ``TorchTrainer`` does that in
each worker). Every rank starts from rank 0's weights and draws its own batches; the gradient of
every trainable parameter (network, head and the objective's own networks) is averaged over the
``W`` ranks as soon as backward has accumulated it, so each optimiser step follows the mean loss
over ``W x batch_size`` patches, as in DistributedDataParallel (Li et al., "PyTorch Distributed:
Experiences on Accelerating Data Parallel Training", VLDB 2020). Rank 0 alone validates, writes
checkpoints and logs; the other ranks receive its metrics.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

import torch.distributed as dist
from torch import Tensor, nn
from torch._utils import _flatten_dense_tensors, _unflatten_dense_tensors
from torch.autograd import Variable
from torch.utils.hooks import RemovableHandle

T = TypeVar("T")


def rank_and_world_size() -> tuple[int, int]:
    """``(rank, world size)`` of the initialised process group, ``(0, 1)`` without one."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def broadcast_weights(modules: Iterable[nn.Module]) -> None:
    """Copy rank 0's parameters and buffers into every rank, in place."""
    for module in modules:
        for tensor in [*module.parameters(), *module.buffers()]:
            dist.broadcast(tensor.data, src=0)


def share_from_rank0(value: T) -> T:
    """Rank 0's ``value`` (any picklable object) on every rank."""
    box: list[Any] = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


class GradientAverager:
    """Replaces the gradients a backward pass accumulates by their mean over the ranks.

    A hook on each trainable parameter (``register_post_accumulate_grad_hook``) notes that its
    gradient is ready; at the end of that backward pass (the autograd engine's final callback, as
    DistributedDataParallel does) the noted gradients are averaged with one all-reduce per dtype.
    Every rank runs the same graph, so the same gradients take part, in a fixed order, everywhere.
    """

    def __init__(self, modules: Iterable[nn.Module], world_size: int):
        self.world_size = world_size
        unique = {id(p): p for module in modules for p in module.parameters() if p.requires_grad}
        self.order = {key: index for index, key in enumerate(unique)}
        self.ready: list[Tensor] = []
        self.handles: list[RemovableHandle] = [p.register_post_accumulate_grad_hook(self._note)
                                               for p in unique.values()]

    def _note(self, parameter: Tensor) -> None:
        if not self.ready:
            Variable._execution_engine.queue_callback(self._average)
        self.ready.append(parameter)

    def _average(self) -> None:
        ready, self.ready = sorted(self.ready, key=lambda p: self.order[id(p)]), []
        for dtype in dict.fromkeys(p.grad.dtype for p in ready):
            grads = [p.grad for p in ready if p.grad.dtype == dtype]
            flat = _flatten_dense_tensors(grads)
            dist.all_reduce(flat)
            flat.div_(self.world_size)
            for grad, mean in zip(grads, _unflatten_dense_tensors(flat, grads)):
                grad.copy_(mean)

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()


@contextlib.contextmanager
def gradients_averaged(modules: Iterable[nn.Module], world_size: int) -> Iterator[None]:
    """Average the modules' gradients over the process group inside (nothing for one process)."""
    averager = GradientAverager(modules, world_size) if world_size > 1 else None
    try:
        yield
    finally:
        if averager is not None:
            averager.remove()
