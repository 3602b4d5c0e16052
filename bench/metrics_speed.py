"""Time the float64 numpy reference PSNR/SSIM against the batched torch versions.

A batch of 512x512 RGB images, Y channel, crop 4. Prints milliseconds per image for each, on CPU
and, when present, on CUDA.
Run from the project root: ``PYTHONPATH=. python bench/metrics_speed.py [--batch 8] [--repeats 3]``.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import torch

from pipeline.metrics import reference, torch_metrics


def best_seconds(work: Callable[[], object], repeats: int, synchronize: Callable[[], None]) -> float:
    """The fastest of ``repeats`` timed runs (after one warm-up run)."""
    work()
    synchronize()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        work()
        synchronize()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    generator = torch.Generator().manual_seed(0)
    hr = torch.rand(args.batch, 3, args.size, args.size, generator=generator)
    sr = torch_metrics.quantize(hr + 0.05 * torch.randn(hr.shape, generator=generator))
    hr = torch_metrics.quantize(hr)
    sr_arrays = [(image.permute(1, 2, 0) * 255).round().to(torch.uint8).numpy() for image in sr]
    hr_arrays = [(image.permute(1, 2, 0) * 255).round().to(torch.uint8).numpy() for image in hr]

    def no_sync() -> None:
        return None

    print(f"{args.batch} x {args.size}x{args.size} RGB, Y channel, crop 4; ms per image (best of {args.repeats})")
    for name in ("psnr", "ssim"):
        numpy_metric = getattr(reference, name)
        seconds = best_seconds(
            lambda: [numpy_metric(s, h, 4, True) for s, h in zip(sr_arrays, hr_arrays)], args.repeats, no_sync
        )
        print(f"  reference {name:8s} numpy float64      {1000 * seconds / args.batch:9.2f}")
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    for device in devices:
        sync = torch.cuda.synchronize if device == "cuda" else no_sync
        sr_on, hr_on = sr.to(device), hr.to(device)
        for name in ("psnr", "ssim", "ms_ssim"):
            torch_metric = getattr(torch_metrics, name)
            seconds = best_seconds(lambda: torch_metric(sr_on, hr_on, 4), args.repeats, sync)
            print(f"  torch     {name:8s} {device:4s} float64 batched {1000 * seconds / args.batch:9.2f}")


if __name__ == "__main__":
    main()
