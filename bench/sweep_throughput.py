"""Sweep throughput on this machine: trials per hour, parallel efficiency and Ray's overheads.

Small CPU trials (EDSR 2 blocks x 16 features, batch 4, HR patch 48, L1, ``--iterations`` steps,
4 validations; MLflow tracking to a local SQLite store, models not logged) run through
``run_sweep`` three times on a fresh local Ray cluster of ``--cpus`` CPUs, one CPU per trial:

- S1: 1 trial; SN: ``--trials`` N trials one at a time (``max_concurrent`` 1); PN: N trials at once.
- ``fit`` alone, in this process with one thread, gives F, the training time of one trial.

Each sweep's wall time is ``fixed + trials x (F + per_trial)``, so ``per_trial = (SN - S1) / (N - 1) - F``
(scheduling, reports, checkpoint copies, MLflow runs; trial processes are reused, so starting one
and importing torch is paid once per concurrent slot) and ``fixed = S1 - F - per_trial`` (starting
Ray and the first trial process, the MLflow parent run, outputs, shutdown); ``in_trial`` is the part of
``per_trial`` spent inside the trial function (Tune's ``time_total_s`` minus F). Parallel efficiency
is ``SN / PN / N`` (1.0 when N trials on N CPUs take the time of one), end to end and for the trials
alone (fixed overhead removed); trials per hour = ``3600 N / PN``. Targets: efficiency >= 0.8 with 2
trials on 2 CPUs, per-trial overhead < 2 s. Other load on the machine lowers the efficiency, so the
1-minute load average before the runs is printed too.

``PYTHONPATH=. python bench/sweep_throughput.py --trials 2 --cpus 2 --iterations 1000``
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from pipeline.config import Params, validate
from pipeline.degrade.imresize import imresize_uint8
from pipeline.imageio import modcrop, write_png
from pipeline.tracking import ensure_experiment
from pipeline.train.loop import fit
from pipeline.tune.space import SearchSpace, TrialChoice
from pipeline.tune.sweep import run_sweep

SCALE = 2
SPLITS = {"train": (8, 96), "val": (2, 64)}


def write_data(root: Path, rng: np.random.Generator) -> Path:
    """Random-texture HR images and their bicubic x2 LR images in the prepare/degrade layout."""
    for split, (count, side) in SPLITS.items():
        for index in range(count):
            hr = modcrop(rng.integers(0, 256, (side, side, 3), dtype=np.uint8), SCALE)
            write_png(root / "hr" / split / f"img{index}.png", hr)
            write_png(root / "lr" / "bicubic" / f"x{SCALE}" / split / f"img{index}.png", imresize_uint8(hr, 1 / SCALE))
    return root


def sweep_params(root: Path, name: str, trials: int, iterations: int, max_concurrent: int, cpus: int) -> Params:
    """``trials`` identical-cost trials (seeds of one configuration) under ``root/name``."""
    return validate({
        "data_dir": str(root / "data"), "models_dir": str(root / name / "models"),
        "results_dir": str(root / name / "results"), "metrics": {"lpips": {"enabled": False}},
        "model": {"name": "edsr", "args": {"n_blocks": 2, "n_feats": 16}},
        "train": {"scale": SCALE, "iterations": iterations, "batch_size": 4, "patch_size": 48, "lr": 1e-3,
                  "device": "cpu", "log_every": 50},
        "tracking": {"uri": f"sqlite:///{root / 'mlflow.db'}", "experiment": "bench", "log_model": False,
                     "log_images": 1, "artifact_location": str(root / "mlartifacts")},
        "sweep": {"objectives": {"l1": {}}, "seeds": trials, "reports": 4, "max_concurrent": max_concurrent,
                  "storage_path": str(root / "ray_results"), "name": name, "ray": {"num_cpus": cpus}},
    })


def timed_sweep(params: Params) -> tuple[float, float]:
    """Wall seconds of ``run_sweep`` and the mean seconds spent inside its trial functions."""
    started = time.perf_counter()
    run_sweep(params)
    wall = time.perf_counter() - started
    with (Path(params.results_dir) / "sweep" / "trials.csv").open() as handle:
        inside = [float(row["seconds"]) for row in csv.DictReader(handle)]
    return wall, sum(inside) / len(inside)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=2, help="N: trials run one at a time, then at once")
    parser.add_argument("--cpus", type=int, default=2, help="CPUs of the local Ray cluster")
    parser.add_argument("--iterations", type=int, default=1000, help="training steps per trial")
    parser.add_argument("--out", type=Path, default=None, help="also write the figures as JSON here")
    args = parser.parse_args()
    if args.trials < 2:
        parser.error("--trials must be at least 2 (per-trial overhead comes from S_N - S_1)")

    with tempfile.TemporaryDirectory(prefix="sweep-bench-") as folder:
        root = Path(folder)
        write_data(root / "data", np.random.default_rng(0))
        torch.set_num_threads(1)  # as a Ray trial with one CPU runs
        reference = sweep_params(root, "reference", 1, args.iterations, 1, args.cpus)
        ensure_experiment(reference.tracking.uri, "bench", root / "mlartifacts")  # SQLite tables: not timed
        load = os.getloadavg()[0]
        started = time.perf_counter()
        fit(SearchSpace(reference.sweep).trial_params(reference, TrialChoice("l1", {}, 0)), root / "fit")
        fit_seconds = time.perf_counter() - started

        one, _ = timed_sweep(sweep_params(root, "one", 1, args.iterations, 1, args.cpus))
        sequential, inside = timed_sweep(sweep_params(root, "sequential", args.trials, args.iterations, 1, args.cpus))
        parallel, _ = timed_sweep(sweep_params(root, "parallel", args.trials, args.iterations, args.trials, args.cpus))

    n = args.trials
    per_trial = (sequential - one) / (n - 1) - fit_seconds
    fixed = one - fit_seconds - per_trial
    figures = {
        "trials": n, "cpus": args.cpus, "iterations": args.iterations, "load_average_before": load,
        "fit_seconds": fit_seconds, "sweep_1_seconds": one, "sequential_seconds": sequential,
        "parallel_seconds": parallel, "per_trial_overhead_seconds": per_trial,
        "in_trial_overhead_seconds": inside - fit_seconds, "per_sweep_overhead_seconds": fixed,
        "efficiency": sequential / parallel / n,
        "efficiency_trials_only": (sequential - fixed) / (parallel - fixed) / n,
        "trials_per_hour": 3600 * n / parallel,
    }
    for key, value in figures.items():
        print(f"{key:>28}: {value:.3f}" if isinstance(value, float) else f"{key:>28}: {value}")
    if args.out:
        args.out.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
