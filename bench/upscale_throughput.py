"""Tiled upscaling: throughput and peak memory of ``pipeline.inference.upscale_image``.

Cases, each in a fresh process so peaks do not mix:
- ``tiled``: a SIZE x SIZE LR image in TILE tiles (the memory claim: no more than one tile's worth);
- ``one tile``: a single TILE x TILE forward pass, the reference for that claim;
- ``untiled``: an UNTILED x UNTILED image in one pass, to show memory growing with the image.
Peak memory is above the state after building the network and a warm-up, with the output array
excluded: CUDA ``max_memory_allocated`` on GPU, peak RSS (``ru_maxrss``) on CPU. The network has
seeded random weights (speed and memory do not depend on them). Throughput is LR megapixels/s.

Run from the project root: ``PYTHONPATH=. python bench/upscale_throughput.py`` (EDSR-baseline x2);
on CPU shrink it, e.g. ``--args '{"n_blocks": 4, "n_feats": 32}' --size 1000 --untiled 500``.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import resource
import time

import numpy as np
import torch

from pipeline.config import LossConfig
from pipeline.inference import SuperResolver, upscale_image
from pipeline.models.registry import build_model
from pipeline.objectives.registry import build_objective
from pipeline.train.device import resolve_device


def peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def measure(model: str, model_args: dict, scale: int, device_name: str, side: int, tile: int, overlap: int,
            batch: int) -> dict[str, float]:
    """Seconds and peak extra memory of upscaling one seeded random ``side x side`` image (run in a child)."""
    torch.manual_seed(0)
    device = resolve_device(device_name)
    net = build_model(model, scale, model_args)
    resolver = SuperResolver(net, build_objective(LossConfig(), net.feature_channels, scale), model, "regression")
    resolver = resolver.to(device).eval()
    image = np.random.default_rng(0).integers(0, 256, (side, side, 3), dtype=np.uint8)
    upscale_image(resolver, image[:32, :32], tile=tile, overlap=overlap)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
    else:
        base = peak_rss_bytes()
    start = time.perf_counter()
    output = upscale_image(resolver, image, tile=tile, overlap=overlap, batch=batch)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - start
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated(device) - base
    else:
        peak = peak_rss_bytes() - base - output.nbytes
    return {"seconds": seconds, "peak_mib": peak / 2**20, "device": str(device)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="edsr")
    parser.add_argument("--args", default='{"n_blocks": 16, "n_feats": 64}', help="model args as JSON")
    parser.add_argument("--scale", type=int, default=2)
    parser.add_argument("--size", type=int, default=2000, help="side of the tiled LR image")
    parser.add_argument("--tile", type=int, default=512)
    parser.add_argument("--overlap", type=int, default=16)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--untiled", type=int, default=1000, help="side of the image upscaled in one pass")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    model_args = json.loads(args.args)
    cases = [("tiled", args.size, args.tile), ("one tile", args.tile, args.tile),
             ("untiled", args.untiled, args.untiled)]
    print(f"{args.model} {model_args} x{args.scale}, overlap {args.overlap}, batch {args.batch}, "
          f"{torch.get_num_threads()} CPU threads")
    context = multiprocessing.get_context("spawn")
    for name, side, tile in cases:
        with context.Pool(1) as pool:
            result = pool.apply(measure, (args.model, model_args, args.scale, args.device, side, tile,
                                          args.overlap, args.batch))
        megapixels = side * side / 1e6
        print(f"{name:>8}: {side}x{side} LR, tile {tile}: {result['seconds']:.2f} s, "
              f"{megapixels / result['seconds']:.3f} LR MP/s, peak {result['peak_mib']:.0f} MiB above the "
              f"network (output excluded) on {result['device']}")


if __name__ == "__main__":
    main()
