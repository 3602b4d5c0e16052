"""The leaderboard's time column against a direct timing of ``upscale`` on the same images.

The column (``decode_ms_per_mp``, headed "SR time (ms/MP)") is what ``evaluate`` records: the wall time
of its tiled upscales of a benchmark's images through ``pipeline.report.scoring.TimedUpscale``, per
output megapixel. The direct timing is the wall clock around ``pipeline.inference.upscale_image`` of
each image (evaluate's tile and overlap: 256 and 16), as ``python -m pipeline upscale`` runs it. Images:
``--images`` random LR images of ``--size`` pixels a side. Models: the default study's network
(EDSR 4x32, x2) with each objective's head as the study configures it (untrained: timing does not depend on
the weights), set up as ``upscale`` runs (subnormals flushed, glibc keeping freed memory). Rounds alternate
the two timings; the ratio column / direct is printed as min / median / max over rounds, with the load.

``PYTHONPATH=. OMP_NUM_THREADS=1 python bench/sr_time_column.py [--rounds 5 --size 256]``
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch

from spread import spread_text
from pipeline.config import LossConfig
from pipeline.inference import SuperResolver, upscale_image
from pipeline.models.registry import build_model
from pipeline.objectives.registry import build_objective
from pipeline.params_file import load_params
from pipeline.report.scoring import TimedUpscale
from pipeline.train.device import flush_subnormals, keep_freed_cpu_memory


def study_resolver(name: str) -> SuperResolver:
    params = load_params("params.yaml")
    torch.manual_seed(0)
    net = build_model(params.model.name, params.train.scale, params.model.args)
    loss = LossConfig(**params.sweep.objectives[name]["loss"])
    return SuperResolver(net, build_objective(loss, net.feature_channels, params.train.scale),
                         params.model.name, name).eval()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--size", type=int, default=200, help="LR image side")
    parser.add_argument("--images", type=int, default=3)
    parser.add_argument("--objectives", nargs="+", default=["l1", "fine_grained", "cs", "fcs"])
    args = parser.parse_args()
    cpu = torch.device("cpu")
    flush_subnormals(cpu)
    keep_freed_cpu_memory(cpu)

    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (args.size, args.size, 3), dtype=np.uint8) for _ in range(args.images)]
    models = {name: study_resolver(name) for name in args.objectives}
    megapixels = len(images) * (args.size * 2) ** 2 / 1e6
    column: dict[str, list[float]] = {name: [] for name in models}
    direct: dict[str, list[float]] = {name: [] for name in models}
    loads = []
    for _ in range(args.rounds):
        loads.append(os.getloadavg()[0])
        for name, model in models.items():
            timed = TimedUpscale(lambda lr: upscale_image(model, lr, tile=256, overlap=16))
            for image in images:
                timed(image)
            column[name].append(timed.ms_per_megapixel())
            seconds = 0.0
            for image in images:
                start = time.perf_counter()
                upscale_image(model, image, tile=256, overlap=16)
                seconds += time.perf_counter() - start
            direct[name].append(1000 * seconds / megapixels)

    print(f"{torch.get_num_threads()} thread(s), {args.images} LR images of {args.size}x{args.size}, "
          f"{args.rounds} rounds, 1-min load average {spread_text(loads, 1)}")
    print("| objective | column (ms/MP) | upscale_image (ms/MP) | column / upscale_image |")
    print("| --- | ---: | ---: | ---: |")
    for name in models:
        ratios = [c / d for c, d in zip(column[name], direct[name])]
        print(f"| {name} | {spread_text(column[name], 0)} | {spread_text(direct[name], 0)} | {spread_text(ratios)} |")


if __name__ == "__main__":
    main()
