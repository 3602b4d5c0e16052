"""Per-trial cost of keeping a sweep in an object store instead of a local folder.

The same sweep (``--trials`` seeds of one small CPU configuration, one at a time, ``--iterations``
steps and 4 reports each, MLflow to a local SQLite store; ``sweep_throughput``'s data and params) runs
with ``sweep.storage_path`` a local folder (L) and ``s3://`` on moto's S3 server on 127.0.0.1 (S),
on one warm local Ray cluster. An untimed sweep of each kind comes first (the S one publishes the
training data, which later S sweeps find already there, and fills the node's copy). Each of
``--repeats`` rounds then times L and S in alternating order, and

- per-trial overhead ``(S - L) / trials``: checkpoint uploads and restores, Tune's result files and
  run state in the bucket, the trial's check of the node's data copy;
- ``S / L``, the sweep's wall time ratio;
- ``publish``: publishing the training data to a new prefix (a sweep pays it once per data key).

Figures are printed as min / median / max over the rounds with the 1-minute load average before and
after. moto is a single Python process on this machine: a real S3 or MinIO endpoint has other costs
(network latency, but no CPU taken from the trials).

``PYTHONPATH=. python bench/storage_overhead.py --trials 2 --iterations 200 --repeats 3``
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from spread import spread_text
from sweep_throughput import local_ray, sweep_params, write_data
from pipeline.config import Params
from pipeline.params_file import validate
from pipeline.tracking.store import ensure_experiment
from pipeline.tune.shared_data import publish_data, training_folders
from pipeline.tune.storage import Storage
from pipeline.tune.sweep import run_sweep
from tests.s3_server import s3_server


def with_storage(params: Params, storage_path: str, endpoint: str | None) -> Params:
    data = params.model_dump(mode="json")
    data["sweep"].update(storage_path=storage_path, storage_endpoint=endpoint)
    return validate(data)


def timed(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=2, help="trials per sweep, run one at a time")
    parser.add_argument("--iterations", type=int, default=200, help="training steps per trial")
    parser.add_argument("--repeats", type=int, default=3, help="rounds of the two interleaved sweeps")
    args = parser.parse_args()

    load_before = os.getloadavg()
    figures: dict[str, list[float]] = {"L": [], "S": [], "overhead": [], "ratio": [], "publish": []}
    with tempfile.TemporaryDirectory(prefix="storage-bench-") as folder, s3_server("bench") as endpoint, \
            local_ray(1):
        root = Path(folder)
        write_data(root / "data", np.random.default_rng(0))
        torch.set_num_threads(1)  # as a Ray trial with one CPU runs

        def sweep(kind: str, name: str) -> Params:
            params = sweep_params(root, name, args.trials, args.iterations, 1)
            if kind == "L":
                return with_storage(params, str(root / "ray_results"), None)
            return with_storage(params, "s3://bench/ray_results", endpoint)

        reference = sweep("L", "reference")
        ensure_experiment(reference.tracking.uri, "bench", root / "mlartifacts")  # SQLite tables: not timed
        for kind in ("L", "S"):
            run_sweep(sweep(kind, f"warm-up-{kind}"))
        folders = training_folders(reference.data_dir, [reference.train])
        for r in range(args.repeats):
            order = ("L", "S") if r % 2 == 0 else ("S", "L")
            times = {kind: timed(lambda kind=kind: run_sweep(sweep(kind, f"{kind}-{r}"))) for kind in order}
            publish = timed(lambda: publish_data(reference.data_dir, folders,
                                                 Storage(f"s3://bench/publish-{r}", endpoint)))
            for key, value in (("L", times["L"]), ("S", times["S"]), ("overhead", (times["S"] - times["L"]) / args.trials),
                               ("ratio", times["S"] / times["L"]), ("publish", publish)):
                figures[key].append(value)
            print(f"round {r + 1}/{args.repeats} ({' '.join(order)}): L {times['L']:.2f} s, S {times['S']:.2f} s, "
                  f"publish {publish:.2f} s", flush=True)
    load_after = os.getloadavg()

    print(f"{args.trials} trials one at a time, {args.iterations} iterations, {args.repeats} interleaved rounds; "
          f"load average (1/5/15 min) before {' '.join(f'{v:.2f}' for v in load_before)}, "
          f"after {' '.join(f'{v:.2f}' for v in load_after)}")
    print(f"  sweep, local folder (s):        {spread_text(figures['L'])}  (min / median / max)")
    print(f"  sweep, s3 on moto (s):          {spread_text(figures['S'])}")
    print(f"  per-trial overhead of s3 (s):   {spread_text(figures['overhead'])}")
    print(f"  s3 / local:                     {spread_text(figures['ratio'], digits=3)}")
    print(f"  publishing the data (s):        {spread_text(figures['publish'])}")


if __name__ == "__main__":
    main()
