"""Training throughput: HR patches/s, peak memory, and whether data loading holds the step back.

Default: EDSR-baseline x2 (16 blocks, 64 features), HR patch 96, batch 16, L1 (objective
``regression``), Adam, on the default device (CUDA when present). Shrink it for a CPU with flags:
``PYTHONPATH=. python bench/train_throughput.py --blocks 4 --feats 32 --patch 48 --batch 8 --iters 20``.

It times the loop's own ``train_step`` (with ``fit``'s loss check) two ways, alternating between
them in rounds and taking the median over rounds of the mean step time:
(a) on one batch pre-loaded on the device; (b) drawing every batch from ``PairedPatchDataset``
(synthetic 2040x1356 images, DIV2K-sized, mapped from the image store as training does, or decoded
into memory with ``--source memory``) through a ``DataLoader`` with ``--workers`` and moving it to
the device. ``data-bound ratio = time(b) / time(a)`` per round, printed min / median / max; the
target is <= 1.05.
Peak memory: CUDA ``max_memory_allocated`` during the steps; on CPU the process's peak RSS
(``ru_maxrss``), which includes the synthetic images generated in memory at the start.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader

from pipeline.config import LossConfig, TrainConfig
from pipeline.data.image_store import stored_pairs
from pipeline.data.paired import ImagePair, PairedPatchDataset
from pipeline.models.registry import build_model
from pipeline.objectives.registry import build_objective
from pipeline.train.device import DeviceSetup, plan_device
from pipeline.train.loop import batch_to_device, train_step

IMAGE_HEIGHT, IMAGE_WIDTH = 1356, 2040


def synthetic_pairs(count: int, scale: int, rng: np.random.Generator) -> list[ImagePair]:
    """Random uint8 LR/HR images; their content does not change the cost of cropping or training."""
    height, width = IMAGE_HEIGHT // scale, IMAGE_WIDTH // scale
    return [ImagePair(f"synthetic{i}", rng.integers(0, 256, (height, width, 3), dtype=np.uint8),
                      rng.integers(0, 256, (height * scale, width * scale, 3), dtype=np.uint8))
            for i in range(count)]


def mapped_pairs(pairs: list[ImagePair], scale: int, data_dir: Path) -> Sequence[ImagePair]:
    """``pairs`` written as PNGs in the prepare/degrade layout under ``data_dir``, then mapped from its image store."""
    for pair in pairs:
        for path, image in ((data_dir / "hr" / "train" / f"{pair.name}.png", pair.hr),
                            (data_dir / "lr" / "bicubic" / f"x{scale}" / "train" / f"{pair.name}.png", pair.lr)):
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(image).save(path, compress_level=1)
    return stored_pairs(data_dir, "bicubic", scale, "train")


def seconds_per_step(setup: DeviceSetup, net, objective, optimizer, scaler, batches: Iterator, steps: int) -> float:
    """Mean wall time of ``steps`` training steps run as ``fit`` runs them: each step's loss is
    checked after the next step is queued, and the block ends when the device is done."""
    start = time.perf_counter()
    previous = None
    for step in range(steps):
        lr, hr = next(batches)
        losses, _ = train_step(net, objective, optimizer, scaler, setup, None, lr, hr, step)
        if previous is not None:
            bool(torch.isfinite(previous))
        previous = losses["total"]
    bool(torch.isfinite(previous))
    return (time.perf_counter() - start) / steps


def argument_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blocks", type=int, default=16)
    parser.add_argument("--feats", type=int, default=64)
    parser.add_argument("--scale", type=int, default=2)
    parser.add_argument("--patch", type=int, default=96, help="HR patch side")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--iters", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=5, help="alternations of (a) and (b)")
    parser.add_argument("--workers", type=int, default=2, help="DataLoader workers for (b)")
    parser.add_argument("--images", type=int, default=8, help="synthetic training images")
    parser.add_argument("--source", default="mapped", choices=["mapped", "memory"],
                        help="mapped from the image store (as training does) or decoded into memory")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--amp", default="none", choices=["none", "bf16", "fp16"])
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--compile", action="store_true")
    return parser


def measure(args: argparse.Namespace, data_dir: Path) -> dict[str, Any]:
    """Per-round mean step times (s) with the pre-loaded batch and with loading, the mean time to
    sample one batch in the main process, the peak memory (bytes) and the device setup."""
    setup = plan_device(TrainConfig(device=args.device, amp=args.amp, channels_last=args.channels_last,
                                    compile=args.compile, scale=args.scale))
    torch.manual_seed(0)
    net = build_model("edsr", args.scale, {"n_blocks": args.blocks, "n_feats": args.feats})
    objective = build_objective(LossConfig(terms={"l1": 1.0}), net.feature_channels, args.scale)
    net.to(setup.device, memory_format=setup.memory_format)
    objective.to(setup.device, memory_format=setup.memory_format)
    optimizer = torch.optim.Adam([*net.parameters(), *objective.sr_parameters()], lr=1e-4)
    scaler = torch.amp.GradScaler(setup.device.type, enabled=setup.uses_grad_scaler)
    train_net = torch.compile(net) if setup.compile else net

    pairs = synthetic_pairs(args.images, args.scale, np.random.default_rng(0))
    if args.source == "mapped":
        pairs = mapped_pairs(pairs, args.scale, data_dir)
    dataset = PairedPatchDataset(pairs, args.patch, args.scale, args.batch, seed=0)
    per_round = max(1, args.iters // args.rounds)
    steps = args.warmup + per_round * args.rounds
    preloaded = batch_to_device(dataset[0], setup)
    loader = DataLoader(dataset, batch_size=None, sampler=range(steps), num_workers=args.workers,
                        pin_memory=setup.device.type == "cuda", generator=torch.Generator().manual_seed(0))
    if setup.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(setup.device)

    def timed(batches: Iterator, count: int) -> float:
        return seconds_per_step(setup, train_net, objective, optimizer, scaler, batches, count)

    preloaded_batches = iter(lambda: preloaded, None)
    loaded_batches = (batch_to_device(batch, setup) for batch in loader)
    timed(preloaded_batches, args.warmup)
    timed(loaded_batches, args.warmup)
    rounds_preloaded, rounds_loading = [], []
    for _ in range(args.rounds):  # alternate, so a change in machine load hits both alike
        rounds_preloaded.append(timed(preloaded_batches, per_round))
        rounds_loading.append(timed(loaded_batches, per_round))
    crop_start = time.perf_counter()
    for iteration in range(args.iters):
        dataset[iteration]
    crop_seconds = (time.perf_counter() - crop_start) / args.iters

    if setup.device.type == "cuda":
        peak = torch.cuda.max_memory_allocated(setup.device)
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 2**10
    return {"setup": setup, "per_round": per_round, "preloaded_s": rounds_preloaded, "loading_s": rounds_loading,
            "crop_s": crop_seconds, "peak_bytes": peak}


def main() -> None:
    args = argument_parser().parse_args()
    with tempfile.TemporaryDirectory(prefix="train-bench-") as folder:
        measured = measure(args, Path(folder))
    setup, per_round = measured["setup"], measured["per_round"]
    ratios = [loading / preloaded for preloaded, loading in zip(measured["preloaded_s"], measured["loading_s"])]
    step_preloaded, step_loading = statistics.median(measured["preloaded_s"]), statistics.median(measured["loading_s"])
    peak = (f"peak CUDA memory {measured['peak_bytes'] / 2**20:.0f} MiB" if setup.device.type == "cuda"
            else f"peak process RSS {measured['peak_bytes'] / 2**20:.0f} MiB")
    print(f"device {setup.device} ({torch.get_num_threads()} CPU threads), amp {args.amp}, "
          f"channels_last {args.channels_last}, compile {setup.compile}")
    print(f"EDSR {args.blocks}x{args.feats} x{args.scale}, HR patch {args.patch}, batch {args.batch}, L1; "
          f"{args.rounds} alternating rounds of {per_round} steps each, "
          f"after {args.warmup} warm-up")
    print(f"(a) pre-loaded batch: {step_preloaded * 1e3:.1f} ms/step, {args.batch / step_preloaded:.1f} HR patches/s")
    print(f"(b) with loading ({args.workers} workers, images {args.source}): {step_loading * 1e3:.1f} ms/step, "
          f"{args.batch / step_loading:.1f} HR patches/s")
    print(f"data-bound ratio (b)/(a) per round, min / median / max: {min(ratios):.3f} / "
          f"{statistics.median(ratios):.3f} / {max(ratios):.3f}; sampling one batch in the main process "
          f"takes {measured['crop_s'] * 1e3:.2f} ms; {peak}")


if __name__ == "__main__":
    main()
