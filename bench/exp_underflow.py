"""The slow-exp trap: ``torch.exp`` where its result underflows, and the class-head step it would slow down.

On CPU, ``torch.exp`` is many times slower on inputs whose exp is below the smallest normal float
(about -87.3 in float32), flushed subnormals or not, while ordered class logits put most of their 256
classes there (down to about -8000). ``pipeline.objectives.class_heads.exp_normal_`` keeps them out of
``exp``. This prints, with subnormals flushed as ``fit`` does and min / median / max over interleaved rounds:

- exp throughput (G values/s) on ordinary inputs (uniform in [-80, 0]), on underflowing ones (uniform in
  [-8000, -88]) with ``exp_`` and with ``exp_normal_``, and ``torch.softmax`` over the innermost axis on
  ordered logits (it has its own exp);
- the class-head step: ``chunked_cross_entropy`` forward + backward on the logits of an ordered CS head
  (``[batch, 768, patch, patch]``; the path of 3x3 heads and fine-grained) against the same step on those
  logits divided by 100 (no entry underflows; the same work otherwise), and against the unguarded
  ``exp_`` (what the trap costs);
- the fused step a 1x1 head trains with (``pointwise_cross_entropy`` forward + backward of the ordered
  head on the features) against the same step with the head's weights and bias divided by 100.

If an ordered step is more than 1.5x its ordinary one, the trap is back: it says so and exits 1.

``PYTHONPATH=. OMP_NUM_THREADS=1 python bench/exp_underflow.py [--rounds 7 --batch 8 --patch 48]``
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import torch

from spread import spread_text
from pipeline.objectives import class_heads
from pipeline.objectives.class_heads import LEVELS, chunked_cross_entropy, exp_normal_
from pipeline.objectives.ordered_head import ClassConv2d, initialise_class_head
from pipeline.objectives.pointwise_head import pointwise_cross_entropy
from pipeline.train.device import flush_subnormals

TRAP_RATIO = 1.5


def ordered_cs_head(features: int = 32) -> ClassConv2d:
    """A freshly ordered 1x1 CS head (``init: ordered``)."""
    torch.manual_seed(0)
    head = ClassConv2d(features, 3 * LEVELS, 1)
    initialise_class_head(head, torch.arange(LEVELS) / (LEVELS - 1), "ordered", 1.0)
    return head


def calm_copy(head: ClassConv2d) -> ClassConv2d:
    """``head`` with weights and bias divided by 100: logits / 100, none underflowing."""
    calm = ClassConv2d(head.in_channels, head.out_channels, 1)
    with torch.no_grad():
        calm.weight.copy_(head.weight / 100)
        calm.bias.copy_(head.bias / 100)
    return calm


CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}


def timed(fn, clock) -> float:
    start = clock()
    fn()
    return clock() - start


def class_head_step(logits: torch.Tensor, target: torch.Tensor) -> None:
    leaf = logits.detach().requires_grad_(True)
    chunked_cross_entropy(leaf, target, LEVELS).backward()


def fused_step(head: ClassConv2d, features: torch.Tensor, target: torch.Tensor) -> None:
    pointwise_cross_entropy(head, features.detach().requires_grad_(True), target, 1 << 22).backward()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--patch", type=int, default=48, help="HR patch side (the logits' height and width)")
    parser.add_argument("--values", type=int, default=1 << 22, help="values per exp throughput sample")
    parser.add_argument("--clock", choices=list(CLOCKS), default="wall",
                        help="cpu: this process's CPU time, for a one-thread run on a machine that others load")
    args = parser.parse_args()
    clock = CLOCKS[args.clock]
    flush_subnormals(torch.device("cpu"))

    generator = torch.Generator().manual_seed(0)
    ordinary = -80 * torch.rand(args.values, generator=generator)
    underflowing = -88 - 7912 * torch.rand(args.values, generator=generator)
    head = ordered_cs_head()
    features = torch.randn(args.batch, head.in_channels, args.patch, args.patch, generator=generator)
    with torch.no_grad():
        logits = head(features)
    rows = logits.permute(0, 2, 3, 1).reshape(-1, LEVELS)[: args.values // LEVELS].contiguous()
    target = torch.randint(0, LEVELS, (args.batch, 3, args.patch, args.patch), generator=generator)
    plain_exp = lambda x: x.exp_()  # noqa: E731 - the unguarded formula, swapped in for one timing
    throughput = {  # name: (inputs, operation on a copy of them); the copy is made before the clock starts
        "exp_, ordinary inputs": (ordinary, torch.Tensor.exp_),
        "exp_, underflowing inputs": (underflowing, torch.Tensor.exp_),
        "exp_normal_, underflowing inputs": (underflowing, exp_normal_),
        "softmax over ordered logits' classes": (rows, lambda x: torch.softmax(x, dim=1)),
    }
    calm = logits / 100
    calm_head = calm_copy(head)
    steps = {
        "ordered logits": lambda: class_head_step(logits, target),
        "the same / 100 (nothing underflows)": lambda: class_head_step(calm, target),
        "fused, ordered head": lambda: fused_step(head, features, target),
        "fused, the head / 100": lambda: fused_step(calm_head, features, target),
    }
    rates: dict[str, list[float]] = {name: [] for name in throughput}
    seconds: dict[str, list[float]] = {name: [] for name in [*steps, "ordered logits, unguarded exp_"]}
    loads = []
    for _ in range(args.rounds):
        loads.append(os.getloadavg()[0])
        for name, (inputs, operation) in throughput.items():
            copy = inputs.clone()
            rates[name].append(inputs.numel() / timed(lambda: operation(copy), clock) / 1e9)
        for name, fn in steps.items():
            seconds[name].append(timed(fn, clock))
        class_heads.exp_normal_, guarded = plain_exp, class_heads.exp_normal_
        try:
            seconds["ordered logits, unguarded exp_"].append(timed(steps["ordered logits"], clock))
        finally:
            class_heads.exp_normal_ = guarded

    print(f"{torch.get_num_threads()} thread(s), subnormals flushed, {args.rounds} interleaved rounds, "
          f"1-min load average {spread_text(loads, 1)}")
    for name, values in rates.items():
        print(f"{name}: {spread_text(values)} G values/s")
    shape = f"[{args.batch}, 768, {args.patch}, {args.patch}]"
    print(f"class-head steps (forward + backward; chunked: of logits {shape}; fused: 1x1 head + cross-entropy):")
    for name, values in seconds.items():
        print(f"  {name}: {spread_text(values, 1, 'ms', 1e-3)}")
    pairs = {"chunked": ("ordered logits", "the same / 100 (nothing underflows)"),
             "fused": ("fused, ordered head", "fused, the head / 100")}
    trapped = False
    for label, (ordered, calm_name) in pairs.items():
        ratios = [a / b for a, b in zip(seconds[ordered], seconds[calm_name])]
        print(f"{label}: ordered / nothing underflows: {spread_text(ratios)} (the trap is back above {TRAP_RATIO})")
        trapped |= sorted(ratios)[len(ratios) // 2] > TRAP_RATIO
    unguarded = [a / b for a, b in zip(seconds["ordered logits, unguarded exp_"], seconds["ordered logits"])]
    print(f"chunked: unguarded / guarded: {spread_text(unguarded)}")
    if trapped:
        print("the slow-exp trap is back: a class-head path exponentiates underflowing logits")
        sys.exit(1)


if __name__ == "__main__":
    main()
