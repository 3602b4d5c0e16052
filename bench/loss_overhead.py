"""Training-step time, FLOPs and peak memory of each objective relative to plain L1, as ``fit`` trains.

One step is ``pipeline.train.loop.train_step`` itself, on the device, networks, optimiser and loss
scaler that ``fit``'s own start builds (``prepare_device``: determinism, glibc keeping freed memory,
subnormals flushed; ``start_or_resume``: seeded networks, the optimiser), float32 on CPU. The objectives are the study's (``sweep.objectives`` of
``params.yaml``: the same loss settings as ``make repro``). Two network settings:

- ``--config default``: the default study's (``params.yaml``: EDSR 4x32, batch 8, patch 48);
- ``--config baseline``: EDSR-baseline (16x64), batch and patch from ``--batch``/``--patch``
  (default 4 and 48, so that a round fits a busy 2-core machine).

Time: rounds of one step per objective, each round starting one objective later, so that drifting
machine load hits all alike; an objective's ratio in a round is its step time over L1's in that round;
printed as min / median / max over the rounds, with the load average before and after. FLOPs:
``torch.utils.flop_counter.FlopCounterMode`` over one step (forward and backward; matmuls and
convolutions, which is what it counts). Peak memory: the most memory allocated during one step beyond
what was allocated before it (CUDA: ``max_memory_allocated``; CPU: the torch profiler's allocation events).
``--clock cpu`` times with this process's CPU time: on one thread, on a machine that other jobs load, it
is close to the wall time the same step takes on a quiet machine.

``PYTHONPATH=. OMP_NUM_THREADS=1 python bench/loss_overhead.py --config default --rounds 7``
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from peak_memory import peak_cpu_bytes
from spread import spread_text
from pipeline.config import LossConfig, Params
from pipeline.params_file import load_params
from pipeline.train.device import DeviceSetup, prepare_device
from pipeline.train.loop import train_step
from pipeline.train.resume import start_or_resume

ROOT = Path(__file__).resolve().parents[1]
TARGETS = {"tlw": 2.2, "fine_grained": 2.0, "cs": 2.2, "fcs": 2.2}


class Case:
    """One objective's networks, optimiser and loss scaler built by ``fit``'s own start, and ``fit``'s step."""

    def __init__(self, params: Params, setup: DeviceSetup):
        self.run = start_or_resume(params, setup, resume=None, world_size=1)
        self.setup = setup
        self.iteration = 0

    def step(self, lr: torch.Tensor, hr: torch.Tensor) -> None:
        run = self.run
        train_step(run.net, run.objective, run.optimizer, run.scaler, self.setup, None, lr, hr, self.iteration)
        self.iteration += 1


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def step_flops(case: Case, lr: torch.Tensor, hr: torch.Tensor) -> int:
    with FlopCounterMode(display=False) as counter:
        case.step(lr, hr)
    return counter.get_total_flops()


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


def interleaved_step_times(cases: dict, lr: torch.Tensor, hr: torch.Tensor, device: torch.device,
                           rounds: int, clock=time.perf_counter) -> dict[str, list[float]]:
    """Time (``clock``: wall by default) of one step of each case per round, each round starting one case later."""
    names = list(cases)
    times: dict[str, list[float]] = {name: [] for name in names}
    for round_index in range(rounds):
        shift = round_index % len(names)
        for name in names[shift:] + names[:shift]:
            synchronize(device)
            start = clock()
            cases[name].step(lr, hr)
            synchronize(device)
            times[name].append(clock() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", choices=("default", "baseline"), default="default")
    parser.add_argument("--patch", type=int, default=48, help="HR patch side (baseline only)")
    parser.add_argument("--batch", type=int, default=4, help="patches per step (baseline only)")
    parser.add_argument("--rounds", type=int, default=7, help="timed rounds (one step per objective each)")
    parser.add_argument("--warmup", type=int, default=2, help="steps per objective before measuring (>= 1: Adam state)")
    parser.add_argument("--memory", action="store_true", help="also measure each step's peak memory")
    parser.add_argument("--objectives", nargs="+", help="a subset of the study's objectives (l1 is always run)")
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                        help="cpu: this process's CPU time, for a one-thread run on a machine that others load")
    args = parser.parse_args()

    params = load_params(ROOT / "params.yaml")
    study = params.sweep.objectives
    names = ["l1", *[name for name in (args.objectives or study) if name != "l1"]]
    if args.config == "default":
        model_args, batch, patch = params.model.args, params.train.batch_size, params.train.patch_size
    else:
        model_args, batch, patch = {}, args.batch, args.patch  # EDSR's defaults: the baseline
    config = params.train.model_copy(update={"batch_size": batch, "patch_size": patch})
    model = params.model.model_copy(update={"args": model_args})
    setup = prepare_device(config)

    generator = torch.Generator().manual_seed(0)
    hr = torch.rand(batch, 3, patch, patch, generator=generator).to(setup.device)
    lr = F.avg_pool2d(hr, config.scale)
    cases = {name: Case(params.model_copy(update={"train": config, "model": model,
                                                   "loss": LossConfig(**study[name]["loss"])}), setup)
             for name in names}
    for case in cases.values():
        for _ in range(args.warmup):
            case.step(lr, hr)
    flops = {name: step_flops(case, lr, hr) for name, case in cases.items()}
    peaks = {name: peak_step_bytes(case, lr, hr, setup.device) for name, case in cases.items()} if args.memory else {}
    load_before = os.getloadavg()[0]
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    times = interleaved_step_times(cases, lr, hr, setup.device, args.rounds, clock)
    load_after = os.getloadavg()[0]

    network = "EDSR " + ("x".join(str(model_args[k]) for k in ("n_blocks", "n_feats")) if model_args else "baseline")
    where = (torch.cuda.get_device_name(setup.device) if setup.device.type == "cuda"
             else f"cpu, {torch.get_num_threads()} thread(s)")
    print(f"{network} x{config.scale}, patch {patch}, batch {batch}, {args.rounds} rounds, {args.clock} clock, "
          f"{where}, load {load_before:.1f} before / {load_after:.1f} after")
    memory_header = " peak step MiB | x L1 |" if peaks else ""
    print(f"| objective | step ms (median) | time x L1 (min / median / max) | FLOPs x L1 | target |{memory_header}")
    print("| --- | ---: | ---: | ---: | ---: |" + (" ---: | ---: |" if peaks else ""))
    for name in names:
        ratios = [t / base for t, base in zip(times[name], times["l1"])]
        target = f"<= {TARGETS[name]:.1f}" if name in TARGETS else "-"
        memory = f" {peaks[name] / 2**20:.1f} | {peaks[name] / peaks['l1']:.2f} |" if peaks else ""
        print(f"| {name} | {1000 * statistics.median(times[name]):.1f} | {spread_text(ratios)} | "
              f"{flops[name] / flops['l1']:.2f} | {target} |{memory}")


if __name__ == "__main__":
    main()
