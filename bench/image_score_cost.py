"""Cost of the weight-free perceptual metrics and the spectral ratio per image, against PSNR/SSIM.

Each HR image of a benchmark folder is modcropped to ``--scale``, bicubic-downscaled and upscaled
again (the study's baseline SR), then scored on the Y channel with crop = scale. Every round times,
image by image and interleaved, the scores evaluate already computed (PSNR, SSIM, region scores),
the weight-free metrics and the spectral ratio; it prints milliseconds per image and the ratio of
each new part to the existing scores (min / median / max over rounds) with the load average.
Run from the project root:
``PYTHONPATH=. python bench/image_score_cost.py data/benchmarks/Set5 [--rounds 5] [--threads 2]``.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from bench.spread import spread_text
from pipeline.bicubic import imresize_uint8
from pipeline.metrics import reference
from pipeline.metrics.perceptual import weight_free_scores
from pipeline.metrics.regions import region_scores
from pipeline.metrics.spectrum import high_frequency_ratio


def pairs(folder: Path, scale: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """``(bicubic SR, HR)`` for every PNG of ``folder``."""
    result = []
    for path in sorted(folder.glob("*.png")):
        hr = np.asarray(Image.open(path).convert("RGB"))
        hr = hr[:hr.shape[0] // scale * scale, :hr.shape[1] // scale * scale]
        result.append((imresize_uint8(imresize_uint8(hr, 1 / scale), scale), hr))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("benchmark", type=Path)
    parser.add_argument("--scale", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    images = pairs(args.benchmark, args.scale)
    s = args.scale
    parts = {"existing (psnr, ssim, regions)": lambda sr, hr: (reference.psnr(sr, hr, s, True),
                                                               reference.ssim(sr, hr, s, True),
                                                               region_scores(sr, hr, s, True)),
             "weight-free (haarpsi, mdsi, ms_gmsd)": lambda sr, hr: weight_free_scores(sr, hr, s, True),
             "hf_ratio": lambda sr, hr: high_frequency_ratio(sr, hr, s, True, s)}
    seconds: dict[str, list[float]] = {name: [] for name in parts}
    for _ in range(args.rounds + 1):  # the first round warms up and is dropped
        for name, score in parts.items():
            start = time.perf_counter()
            for sr, hr in images:
                score(sr, hr)
            seconds[name].append((time.perf_counter() - start) / len(images))
    existing = np.array(seconds["existing (psnr, ssim, regions)"][1:])
    print(f"{args.benchmark.name}: {len(images)} images, x{s}, Y, crop {s}, {args.threads} torch threads, "
          f"{args.rounds} rounds; load average {os.getloadavg()[0]:.1f}")
    for name, values in seconds.items():
        kept = np.array(values[1:])
        print(f"  {name:38s} ms/image {spread_text(list(1000 * kept), 1)}   "
              f"x existing {spread_text(list(kept / existing), 2)}")


if __name__ == "__main__":
    main()
