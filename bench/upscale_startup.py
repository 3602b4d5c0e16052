"""Upscaling one small image: ``python -m pipeline upscale`` against a plain torch script, end to end.

Each run is a fresh process, timed from start to exit, so it includes interpreter and import
start-up, loading the checkpoint, the forward pass and writing the PNG. Cases, interleaved within
every repeat (the order rotates), so a busy machine slows them alike:
- ``import torch``: ``python -c "import torch"``, the floor any torch program pays;
- ``plain``: a script that imports torch, builds the same network, loads the checkpoint's weights
  with ``torch.load(weights_only=True)``, runs the same forward on the image and saves a PNG;
- ``upscale``: ``python -m pipeline upscale IMAGE --model CHECKPOINT --scale S -o OUT --device cpu``.
Prints seconds (min / median / max) per case and the ratio upscale / plain over the repeats.
The network is the default study's (EDSR 4x32 x2), seeded, untrained (time does not depend on weights).

Run from the project root: ``PYTHONPATH=. python bench/upscale_startup.py [--size 96] [--repeats 7]``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from spread import spread_text
from pipeline.imageio import write_png
from pipeline.models.registry import build_model
from pipeline.objectives.registry import build_objective
from pipeline.params_file import validate
from pipeline.train.checkpoint import checkpoint_meta, save_checkpoint

PLAIN_SCRIPT = """
import sys
import numpy as np
import torch
from PIL import Image
from pipeline.models.registry import build_model

checkpoint, image, out = sys.argv[1:4]
state = torch.load(checkpoint, map_location="cpu", weights_only=True)
meta = state["meta"]
net = build_model(meta["model"]["name"], meta["scale"], meta["model"]["args"])
net.load_state_dict(state["model"])
head = torch.nn.Conv2d(meta["feature_channels"], 3, 3, padding=1)
head.load_state_dict({key[len("head.conv."):]: value for key, value in state["objective"].items()
                      if key.startswith("head.conv.")})
lr = torch.from_numpy(np.asarray(Image.open(image).convert("RGB"))).permute(2, 0, 1)[None].float() / 255
with torch.inference_mode():
    sr = head(net.eval()(lr)).clamp(0, 1)
Image.fromarray(sr[0].permute(1, 2, 0).mul(255).round().byte().numpy()).save(out)
"""


def write_inputs(folder: Path, model: str, model_args: dict, scale: int, size: int) -> tuple[Path, Path]:
    """A seeded checkpoint of the default study's network and a random ``size x size`` LR image."""
    torch.manual_seed(0)
    params = validate({"model": {"name": model, "args": model_args}, "train": {"scale": scale}})
    net = build_model(params.model.name, scale, params.model.args)
    objective = build_objective(params.loss, net.feature_channels, scale)
    checkpoint = folder / "best.pt"
    save_checkpoint(checkpoint, {"model": net.state_dict(), "objective": objective.state_dict(),
                                 "meta": checkpoint_meta(params, net.feature_channels)})
    image = folder / "image.png"
    write_png(image, np.random.default_rng(0).integers(0, 256, (size, size, 3), dtype=np.uint8))
    return checkpoint, image


def seconds(command: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="edsr")
    parser.add_argument("--args", default='{"n_blocks": 4, "n_feats": 32}', help="model args as JSON")
    parser.add_argument("--scale", type=int, default=2)
    parser.add_argument("--size", type=int, default=96, help="side of the LR image")
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="srloss-bench-") as tmp:
        folder = Path(tmp)
        checkpoint, image = write_inputs(folder, args.model, json.loads(args.args), args.scale, args.size)
        cases = {
            "import torch": [sys.executable, "-c", "import torch"],
            "plain": [sys.executable, "-c", PLAIN_SCRIPT, str(checkpoint), str(image), str(folder / "plain.png")],
            "upscale": [sys.executable, "-m", "pipeline", "upscale", str(image), "--model", str(checkpoint),
                        "--scale", str(args.scale), "-o", str(folder / "out"), "--device", "cpu"],
        }
        names = list(cases)
        for name in names:  # warm the page cache once
            seconds(cases[name])
        times: dict[str, list[float]] = {name: [] for name in names}
        for repeat in range(args.repeats):
            for name in names[repeat % len(names):] + names[:repeat % len(names)]:
                times[name].append(seconds(cases[name]))
    print(f"{args.model} {args.args} x{args.scale}, one {args.size}x{args.size} image, "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}, {args.repeats} interleaved repeats, "
          f"load average {os.getloadavg()[0]:.2f}")
    for name in names:
        print(f"{name:>12}: {spread_text(times[name], digits=3)} s (min / median / max)")
    ratios = [up / plain for up, plain in zip(times["upscale"], times["plain"])]
    print(f"upscale / plain: {spread_text(ratios, digits=3)} (target <= 1.3)")
    print(f"upscale start-up above import torch: {spread_text([u - t for u, t in zip(times['upscale'], times['import torch'])], digits=3)} s")


if __name__ == "__main__":
    main()
