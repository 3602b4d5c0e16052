"""Where one sweep's fixed cost goes: seconds per step of ``run_sweep`` for a one-trial sweep.

The trial is ``bench/sweep_throughput.py``'s (EDSR 2x16, L1, ``--iterations`` steps, MLflow to
SQLite). By default one local Ray cluster (node address 127.0.0.1) is started for the whole bench
and one untimed sweep warms it; with ``--cold`` every sweep starts and stops its own, as a DVC
stage does. Steps, each the median over ``--repeats`` sweeps, timed by wrapping ``run_sweep``'s
parts (wall clock, so the trial process's times line up with the driver's):

- checks: params, storage and tracking checks, the MLflow experiment, the sweep folder;
- ray: joining (warm: the existing connection) or starting the cluster;
- parent run: the MLflow parent run and the sweep's state file;
- trial process: from ``Tuner.fit`` to the trial function's first line: Tune's setup, a Ray worker
  leased for the trial actor, and the imports the trial needs (``ray.tune``, torch, MLflow, the pipeline);
- trial: the trial function, against ``fit`` of the same trial run warm in this process (the
  difference is the MLflow child run, Tune's reports and checkpoint copies, and the imports torch
  makes on first use, e.g. ``torch._dynamo`` on the first optimizer);
- tune end: from the trial function's return to ``Tuner.fit``'s;
- outputs: ``trials.csv``, ``best.yaml``, ``models/``, settling the MLflow runs;
- ray end: leaving the cluster (warm: nothing) or shutting it down.

``PYTHONPATH=. python bench/sweep_steps.py [--iterations 100] [--repeats 3] [--cold]``
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import runpy
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import pipeline.tune.sweep as sweep_module
from pipeline.train.loop import fit
from pipeline.tune.space import SearchSpace, TrialChoice
from pipeline.tune.trial import run_trial

THROUGHPUT = runpy.run_path(str(Path(__file__).with_name("sweep_throughput.py")), run_name="sweep_throughput")
STEPS = ("checks", "ray", "parent run", "trial process", "trial", "tune end", "outputs", "ray end")


def instrument(marks: dict[str, float], trial_file: Path) -> None:
    """Wrap ``run_sweep``'s parts to note wall-clock times in ``marks``; the trial function writes its own
    start and end to ``trial_file`` (it runs in another process)."""
    cluster, parent_run, tuner = sweep_module.ray_cluster, sweep_module._parent_run, sweep_module._tuner

    @contextlib.contextmanager
    def timed_cluster(config):
        marks["ray start"] = time.time()
        with cluster(config) as joined:
            marks["ray ready"] = time.time()
            try:
                yield joined
            finally:
                marks["ray leave"] = time.time()
        marks["ray left"] = time.time()

    def timed_parent_run(*args):
        started = parent_run(*args)
        marks["parent run"] = time.time()
        return started

    def timed_tuner(*args):
        built = tuner(*args)
        fit_tuner = built.fit

        def timed_fit():
            marks["fit start"] = time.time()
            grid = fit_tuner()
            marks["fit end"] = time.time()
            return grid

        built.fit = timed_fit
        return built

    def timed_trial(config, sweep):
        called = time.time()
        run_trial(config, sweep)
        trial_file.write_text(json.dumps({"called": called, "ended": time.time()}))

    sweep_module.ray_cluster, sweep_module._parent_run, sweep_module._tuner = timed_cluster, timed_parent_run, timed_tuner
    sweep_module.run_trial = timed_trial


def one_sweep(marks: dict[str, float], trial_file: Path, root: Path, name: str, iterations: int) -> dict[str, float]:
    """Seconds per step of one one-trial sweep (``instrument`` has wrapped its parts)."""
    marks.clear()
    marks["begin"] = time.time()
    sweep_module.run_sweep(THROUGHPUT["sweep_params"](root, name, 1, iterations, 1))
    marks["end"] = time.time()
    trial = json.loads(trial_file.read_text())
    return {"checks": marks["ray start"] - marks["begin"], "ray": marks["ray ready"] - marks["ray start"],
            "parent run": marks["parent run"] - marks["ray ready"], "trial process": trial["called"] - marks["fit start"],
            "trial": trial["ended"] - trial["called"], "tune end": marks["fit end"] - trial["ended"],
            "outputs": marks["ray leave"] - marks["fit end"], "ray end": marks["ray left"] - marks["ray leave"],
            "total": marks["end"] - marks["begin"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=100, help="training steps of the trial")
    parser.add_argument("--repeats", type=int, default=3, help="timed sweeps (their median is printed)")
    parser.add_argument("--cold", action="store_true", help="every sweep starts and stops its own Ray cluster")
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="sweep-steps-") as folder, \
            (contextlib.nullcontext(0.0) if args.cold else THROUGHPUT["local_ray"](2)):
        root = Path(folder)
        THROUGHPUT["write_data"](root / "data", np.random.default_rng(0))
        torch.set_num_threads(1)  # as a Ray trial with one CPU runs
        params = THROUGHPUT["sweep_params"](root, "fit", 1, args.iterations, 1)
        trial = SearchSpace(params.sweep).trial_params(params, TrialChoice("l1", {}, 0))
        fit(trial, root / "fit-warm-up")
        started = time.perf_counter()
        fit(trial, root / "fit")
        fit_seconds = time.perf_counter() - started
        marks: dict[str, float] = {}
        trial_file = root / "trial.json"
        instrument(marks, trial_file)
        if not args.cold:
            one_sweep(marks, trial_file, root, "warm-up", args.iterations)
        runs = [one_sweep(marks, trial_file, root, f"sweep-{r}", args.iterations) for r in range(args.repeats)]
    print(f"one-trial sweep, {args.iterations} iterations, {'cold (own Ray each)' if args.cold else 'warm'}, "
          f"median of {args.repeats}; load average {load_before:.2f} before, {os.getloadavg()[0]:.2f} after")
    for step in (*STEPS, "total"):
        values = [run[step] for run in runs]
        print(f"{step:>14}: {statistics.median(values):6.2f} s  ({min(values):.2f}-{max(values):.2f})")
    print(f"{'fit (warm)':>14}: {fit_seconds:6.2f} s  (in this process, one thread)")


if __name__ == "__main__":
    main()
