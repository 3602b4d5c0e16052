"""Throughput of MATLAB-exact bicubic ``imresize``: a 2040x1356 RGB image (DIV2K size) downscaled x4.

Run from the project root: ``PYTHONPATH=. python bench/imresize_speed.py [--repeats N]``.
Prints input megapixels per second (from the median and the fastest of N timed calls, after
one warm-up) on CPU, and on CUDA when available.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from pipeline.degrade.imresize import imresize

HEIGHT, WIDTH = 1356, 2040


def call_seconds(device: torch.device, repeats: int, generator: torch.Generator) -> list[float]:
    """Wall time of each of ``repeats`` calls of ``imresize(image, scale=0.25)`` on ``device``."""
    image = torch.rand(3, HEIGHT, WIDTH, generator=generator, dtype=torch.float64).to(device)
    imresize(image, scale=0.25)
    seconds = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        imresize(image, scale=0.25)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        seconds.append(time.perf_counter() - start)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    generator = torch.Generator().manual_seed(0)
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    megapixels = HEIGHT * WIDTH / 1e6
    for device in devices:
        seconds = call_seconds(device, args.repeats, generator)
        median, best = statistics.median(seconds), min(seconds)
        print(
            f"{device.type}: {WIDTH}x{HEIGHT} RGB /4 float64: median {megapixels / median:.1f} MP/s "
            f"({median * 1e3:.1f} ms), best {megapixels / best:.1f} MP/s ({best * 1e3:.1f} ms); "
            f"{torch.get_num_threads()} CPU threads"
        )


if __name__ == "__main__":
    main()
