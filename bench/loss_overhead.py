"""Training-step time and peak memory of each objective relative to plain L1, on EDSR-baseline.

One step is what ``pipeline.train.loop.train_step`` does in float32: ``out = objective(net(lr))``,
``decode`` without gradient and ``aux_step`` (only for objectives with an own update step, as the
trainer does), ``loss``, backward, one Adam step over the network and the head; on CPU with glibc
keeping freed memory, as ``fit`` does (``pipeline.train.device.keep_freed_cpu_memory``). Time: the median over
``--iters`` steps per objective, the objectives interleaved round by round (starting one later
each round) so that drifting machine load hits all of them alike; ratio = median / median of ``l1``.

Peak memory: the most memory allocated during one step beyond what was allocated before it
(weights, optimiser moments and the batch are excluded; activations, gradients and the loss's
temporaries are counted). On CUDA it is ``torch.cuda.max_memory_allocated`` minus the allocation at
the step's start; on CPU it is the highest running total of the torch profiler's memory events
(``profile_memory=True``, which records every CPU tensor allocation and free inside the step).

Run from the project root: ``PYTHONPATH=. python bench/loss_overhead.py [--patch 48 --batch 4 --iters 10]``.
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

import torch
import torch.nn.functional as F

from peak_memory import peak_cpu_bytes
from pipeline.config import LossConfig
from pipeline.models.registry import build_model
from pipeline.objectives.registry import build_objective
from pipeline.train.device import keep_freed_cpu_memory

CASES: dict[str, dict[str, Any]] = {
    "l1": {"objective": "regression", "terms": {"l1": 1.0}},
    "charbonnier": {"objective": "regression", "terms": {"charbonnier": 1.0}},
    "tv": {"objective": "regression", "terms": {"l1": 1.0, "tv": 0.01}},
    "grad2": {"objective": "regression", "terms": {"l1": 1.0, "grad2": 0.1}},
    "tlw": {"objective": "tlw", "terms": {}},
    "fine_grained": {"objective": "fine_grained", "terms": {}},
    "cs": {"objective": "cs", "terms": {}},
    "fcs": {"objective": "fcs", "terms": {}},
}
TARGETS = {"charbonnier": 1.05, "tv": 1.05, "grad2": 1.10, "tlw": 2.2, "fine_grained": 2.0, "cs": 2.0, "fcs": 2.5}


class Case:
    """One network + objective + optimiser, and the training step the trainer would run."""

    def __init__(self, name: str, scale: int, device: torch.device, iterations: int):
        torch.manual_seed(0)
        spec = CASES[name]
        self.net = build_model("edsr", scale, {}).to(device)
        config = LossConfig(objective=spec["objective"], terms=spec["terms"])
        self.objective = build_objective(config, self.net.feature_channels, scale, total_iterations=iterations).to(device)
        self.optimizer = torch.optim.Adam([*self.net.parameters(), *self.objective.sr_parameters()], lr=1e-4)
        self.iteration = 0

    def step(self, lr: torch.Tensor, hr: torch.Tensor) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        out = self.objective(self.net(lr))
        if self.objective.has_aux_step:
            with torch.no_grad():
                sr = self.objective.decode(out)
            self.objective.aux_step(sr, hr, self.iteration)
        self.objective.loss(out, hr, self.iteration)["total"].backward()
        self.optimizer.step()
        self.iteration += 1


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def peak_step_bytes(case: Case, lr: torch.Tensor, hr: torch.Tensor, device: torch.device) -> int:
    """Peak bytes allocated by one step beyond those allocated at its start (see the module docstring)."""
    if device.type == "cuda":
        synchronize(device)
        before = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        case.step(lr, hr)
        synchronize(device)
        return torch.cuda.max_memory_allocated(device) - before
    return peak_cpu_bytes(lambda: case.step(lr, hr))


def interleaved_step_times(cases: dict[str, Any], lr: torch.Tensor, hr: torch.Tensor, device: torch.device,
                           iters: int) -> dict[str, list[float]]:
    """Wall time of ``iters`` steps of each case (anything with ``step(lr, hr)``), round by round,
    each round starting one case later, so that drifting machine load hits all of them alike."""
    names = list(cases)
    times: dict[str, list[float]] = {name: [] for name in names}
    for round_index in range(iters):
        shift = round_index % len(names)
        for name in names[shift:] + names[:shift]:
            synchronize(device)
            start = time.perf_counter()
            cases[name].step(lr, hr)
            synchronize(device)
            times[name].append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patch", type=int, default=96, help="HR patch side")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--iters", type=int, default=20, help="timed steps per objective")
    parser.add_argument("--warmup", type=int, default=2, help="steps per objective before measuring (>= 1: Adam state)")
    parser.add_argument("--scale", type=int, default=2)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--objectives", nargs="+", default=list(CASES), choices=list(CASES))
    args = parser.parse_args()
    names = ["l1", *[n for n in args.objectives if n != "l1"]]

    device = torch.device(args.device)
    keep_freed_cpu_memory(device)
    generator = torch.Generator().manual_seed(0)
    hr = torch.rand(args.batch, 3, args.patch, args.patch, generator=generator).to(device)
    lr = F.avg_pool2d(hr, args.scale)
    cases = {name: Case(name, args.scale, device, args.warmup + args.iters + 1) for name in names}
    for case in cases.values():
        for _ in range(args.warmup):
            case.step(lr, hr)
    peaks = {name: peak_step_bytes(case, lr, hr, device) for name, case in cases.items()}
    times = interleaved_step_times(cases, lr, hr, device, args.iters)

    base = statistics.median(times["l1"])
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu, {torch.get_num_threads()} threads"
    print(f"EDSR-baseline x{args.scale}, patch {args.patch}, batch {args.batch}, {args.iters} steps each, {where}")
    print("| objective | step ms (median) | x L1 | target | peak step MiB | x L1 |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for name in names:
        median = statistics.median(times[name])
        target = f"<= {TARGETS[name]:.2f}" if name in TARGETS else "-"
        print(f"| {name} | {1000 * median:.1f} | {median / base:.2f} | {target} | "
              f"{peaks[name] / 2**20:.1f} | {peaks[name] / peaks['l1']:.2f} |")


if __name__ == "__main__":
    main()
