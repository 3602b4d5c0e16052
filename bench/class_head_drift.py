"""What the fused 1x1 class head changes in a trained model: the study's CS / FCS run through ``fit`` twice.

``pointwise_cross_entropy`` (head + cross-entropy block by block) equals the conv + ``chunked_cross_entropy``
it replaced only up to float32 rounding (other summation orders; ``tests/objectives/test_class_heads.py``).
For each named objective of the study (``sweep.objectives`` of ``params.yaml``, the default study's
network and budget) it prints:

- one step: the largest difference of loss and of each gradient between the two paths, over the
  largest entry of the conv path's tensor, on one seeded batch of the study's size (subnormals flushed);
- with ``--data-dir``: ``fit`` twice on the same prepared data, seed and thread count, once fused and once
  with ``PointwiseLogits.cross_entropy`` replaced by the conv path; the validation metrics of both runs,
  their differences and each run's wall time.

``--data-dir`` needs prepared data (``python -m pipeline prepare`` and ``degrade`` at x2, e.g. with
``--set data_dir=/tmp/data``)::

    PYTHONPATH=. OMP_NUM_THREADS=1 python bench/class_head_drift.py --data-dir /tmp/data --objectives cs
"""

from __future__ import annotations

import argparse
import contextlib
import os
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from bench.class_head_paths import ConvPath, loss_and_gradients, relative_difference
from pipeline.config import LossConfig
from pipeline.params_file import load_params, validate
from pipeline.models.registry import build_model
from pipeline.objectives.registry import build_objective
from pipeline.train.device import flush_subnormals
from pipeline.train.loop import fit

ROOT = Path(__file__).resolve().parents[1]


def step_differences(name: str) -> list[float]:
    """|fused - conv| max over |conv| max, for the loss and each gradient of one step of the study's size."""
    params = load_params(ROOT / "params.yaml")
    torch.manual_seed(params.seed)
    net = build_model(params.model.name, params.train.scale, params.model.args)
    objective = build_objective(LossConfig(**params.sweep.objectives[name]["loss"]), net.feature_channels,
                                params.train.scale)
    side = params.train.patch_size
    hr = torch.rand(params.train.batch_size, 3, side, side, generator=torch.Generator().manual_seed(0))
    lr = F.avg_pool2d(hr, params.train.scale)
    fused = loss_and_gradients(net, objective, lr, hr)
    with ConvPath():
        conv = loss_and_gradients(net, objective, lr, hr)
    return relative_difference(fused, conv)


def study_params(name: str, data_dir: str, iterations: int | None):
    params = load_params(ROOT / "params.yaml").model_dump()
    params.update(data_dir=data_dir, loss=params["sweep"]["objectives"][name]["loss"])
    params["tracking"]["enabled"] = False
    params["metrics"]["lpips"] = {"enabled": False}
    params["train"].update(progress=False, device="cpu")
    if iterations is not None:
        params["train"].update(iterations=iterations)
    return validate(params)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", help="a prepared data folder with x2 bicubic LR images (to train)")
    parser.add_argument("--objectives", nargs="+", default=["cs", "fcs"])
    parser.add_argument("--iterations", type=int, help="default: the study's train.iterations")
    args = parser.parse_args()
    load = os.getloadavg()[0]
    flush_subnormals(torch.device("cpu"))
    for name in args.objectives:
        differences = step_differences(name)
        print(f"{name}: one step, |fused - conv| / max |conv|: loss {differences[0]:.1e}, gradients up to "
              f"{max(differences[1:]):.1e} ({len(differences) - 1} tensors)")
    with tempfile.TemporaryDirectory() as runs:
        for name in args.objectives if args.data_dir else ():
            metrics, seconds = {}, {}
            for path in ("fused", "conv"):
                with ConvPath() if path == "conv" else contextlib.nullcontext():
                    start = time.perf_counter()
                    result = fit(study_params(name, args.data_dir, args.iterations), Path(runs) / name / path)
                    seconds[path] = time.perf_counter() - start
                metrics[path] = result.final_metrics
            print(f"{name}: {result.iterations} iterations; fit {seconds['fused']:.0f} s fused, "
                  f"{seconds['conv']:.0f} s conv path (wall)")
            for key in sorted(set(metrics["fused"]) & set(metrics["conv"])):
                if key.startswith("val/"):
                    fused, conv = metrics["fused"][key], metrics["conv"][key]
                    print(f"  {key:24s} fused {fused:.6f}  conv {conv:.6f}  difference {fused - conv:+.2e}")
    print(f"load average {load:.1f} before, {os.getloadavg()[0]:.1f} after")


if __name__ == "__main__":
    main()
