"""What the fused 1x1 class head changes in a trained model: the study's CS / FCS run through ``fit`` twice.

``pointwise_cross_entropy`` (head + cross-entropy block by block) equals the conv + ``chunked_cross_entropy``
it replaced only up to float32 rounding (other summation orders; ``tests/objectives/test_class_heads.py``).
This trains each named objective of the study (``sweep.objectives`` of ``params.yaml``, the default
study's network and budget) with ``fit`` twice on the same prepared data, seed and thread count: once
fused, once with ``PointwiseLogits.cross_entropy`` replaced by the conv path, and prints the validation
metrics of both runs and their differences, and the wall time of each run.

Needs prepared data (``python -m pipeline prepare`` and ``degrade`` at x2, e.g. with
``--set data_dir=/tmp/data``)::

    PYTHONPATH=. OMP_NUM_THREADS=1 python bench/class_head_drift.py --data-dir /tmp/data --objectives cs
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from pipeline.config import validate, load_params
from pipeline.objectives import pointwise_head
from pipeline.objectives.class_heads import LEVELS, chunked_cross_entropy
from pipeline.train.loop import fit

ROOT = Path(__file__).resolve().parents[1]


def conv_path_cross_entropy(self, target, chunk_elements):
    """The path the fused one replaced: the conv's logits for the whole batch, then ``chunked_cross_entropy``."""
    return chunked_cross_entropy(self.logits(), target, LEVELS, chunk_elements)


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
    parser.add_argument("--data-dir", required=True, help="a prepared data folder with x2 bicubic LR images")
    parser.add_argument("--objectives", nargs="+", default=["cs", "fcs"])
    parser.add_argument("--iterations", type=int, help="default: the study's train.iterations")
    args = parser.parse_args()
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as runs:
        for name in args.objectives:
            metrics, seconds = {}, {}
            for path in ("fused", "conv"):
                original = pointwise_head.PointwiseLogits.cross_entropy
                if path == "conv":
                    pointwise_head.PointwiseLogits.cross_entropy = conv_path_cross_entropy
                try:
                    start = time.perf_counter()
                    result = fit(study_params(name, args.data_dir, args.iterations), Path(runs) / name / path)
                    seconds[path] = time.perf_counter() - start
                finally:
                    pointwise_head.PointwiseLogits.cross_entropy = original
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
