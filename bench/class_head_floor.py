"""CS / FCS inference against its arithmetic floor, on the machine it runs on.

Inference is ``SuperResolver.forward`` (``objective.predict(net(lr))``: network, 768-logit class head and
decode) of a ``--size`` x ``--size`` LR input at x2 with the default study's network (EDSR 4x32) and an
ordered class head, in inference mode with subnormals flushed and glibc keeping freed memory, as
``upscale`` and ``evaluate`` run it.
The floor of one output pixel is

    (network + head FLOPs per output pixel) / (fp32 matmul rate) + 768 / (exp rate),

the FLOPs counted by ``torch.utils.flop_counter.FlopCounterMode`` over one inference, the matmul rate
that of a 1024 x 1024 x 1024 ``torch.mm`` and the exp rate that of ``torch.exp`` on ordinary inputs
(uniform in [-80, 0]), both measured in every round. Each round times the network alone, CS and FCS
once each; ratios to the round's floor are printed as min / median / max over the rounds, with the load.
``--clock cpu`` times with this process's CPU time instead of the wall clock: on one thread, on a machine
that other jobs load, it is close to the wall time the same run takes on a quiet machine.

``PYTHONPATH=. OMP_NUM_THREADS=1 python bench/class_head_floor.py [--rounds 5 --size 256]``
"""

from __future__ import annotations

import argparse
import os
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from spread import spread_text
from pipeline.config import LossConfig
from pipeline.inference import SuperResolver
from pipeline.models.registry import build_model
from pipeline.objectives.registry import build_objective
from pipeline.params_file import load_params
from pipeline.train.device import flush_subnormals, keep_freed_cpu_memory

EXPS_PER_PIXEL = 768
MATMUL_SIDE = 1024


CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}


def timed(fn, clock) -> float:
    start = clock()
    fn()
    return clock() - start


def resolvers(names: list[str]) -> dict[str, SuperResolver]:
    params = load_params("params.yaml")
    built = {}
    for name in names:
        torch.manual_seed(0)
        net = build_model(params.model.name, params.train.scale, params.model.args)
        objective = build_objective(LossConfig(**params.sweep.objectives[name]["loss"]), net.feature_channels,
                                    params.train.scale)
        built[name] = SuperResolver(net, objective, params.model.name, name).eval()
    return built


@torch.inference_mode()
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--size", type=int, default=256, help="LR side (evaluate's tile is 256)")
    parser.add_argument("--clock", choices=list(CLOCKS), default="wall",
                        help="cpu: this process's CPU time, for a one-thread run on a machine that others load")
    args = parser.parse_args()
    clock = CLOCKS[args.clock]
    flush_subnormals(torch.device("cpu"))
    keep_freed_cpu_memory(torch.device("cpu"))

    models = resolvers(["cs", "fcs"])
    lr = torch.rand(1, 3, args.size, args.size, generator=torch.Generator().manual_seed(0))
    pixels = (args.size * models["cs"].scale) ** 2
    flops = {}
    for name, model in models.items():
        with FlopCounterMode(display=False) as counter:
            model(lr)
        flops[name] = counter.get_total_flops() / pixels
    a, b = torch.randn(MATMUL_SIDE, MATMUL_SIDE), torch.randn(MATMUL_SIDE, MATMUL_SIDE)
    exponents = -80 * torch.rand(1 << 22)
    buffer = torch.empty_like(exponents)

    matmul_rates, exp_rates, loads = [], [], []
    seconds: dict[str, list[float]] = {"network": [], **{name: [] for name in models}}
    for _ in range(args.rounds):
        loads.append(os.getloadavg()[0])
        matmul_rates.append(2 * MATMUL_SIDE**3 / timed(lambda: torch.mm(a, b), clock))
        buffer.copy_(exponents)
        exp_rates.append(exponents.numel() / timed(buffer.exp_, clock))
        seconds["network"].append(timed(lambda: models["cs"].net(lr), clock))
        for name, model in models.items():
            seconds[name].append(timed(lambda: model(lr), clock))

    print(f"{torch.get_num_threads()} thread(s), {args.size}x{args.size} LR -> {pixels / 1e6:.3f} MP, EDSR 4x32 x2, "
          f"{args.rounds} interleaved rounds, {args.clock} clock, 1-min load average {spread_text(loads, 1)}")
    print(f"fp32 matmul ({MATMUL_SIDE}^3): {spread_text(matmul_rates, 1, 'GFLOP/s', 1e9)}; "
          f"exp on ordinary inputs: {spread_text(exp_rates, 2, 'G/s', 1e9)}")
    print(f"network alone: {spread_text(seconds['network'], 1, 'ms', 1e-3)}")
    for name in models:
        floors = [pixels * (flops[name] / m + EXPS_PER_PIXEL / e) for m, e in zip(matmul_rates, exp_rates)]
        ratios = [t / f for t, f in zip(seconds[name], floors)]
        print(f"{name}: {flops[name] / 1e3:.1f} kFLOP per output pixel (network + head); "
              f"floor {spread_text(floors, 1, 'ms', 1e-3)}; measured {spread_text(seconds[name], 1, 'ms', 1e-3)}; "
              f"measured / floor {spread_text(ratios)} (target <= 1.3)")


if __name__ == "__main__":
    main()
