"""Sweep throughput on this machine, warm and repeated: fixed and per-trial overheads, parallel efficiency.

Small CPU trials (EDSR 2 blocks x 16 features, batch 4, HR patch 48, L1, ``--iterations`` steps,
4 validations; MLflow tracking to a local SQLite store, models not logged) run through ``run_sweep``
on one local Ray cluster of ``--cpus`` CPUs (node address 127.0.0.1), started once for the whole bench
and stopped at its end, also on an error or Ctrl-C. ``run_sweep`` uses that connection as it is, so
no measured sweep pays Ray's start (printed once, as ``ray_start_seconds``) or shutdown. One
untimed sweep and one untimed ``fit`` come first. Then each of ``--repeats`` rounds times, in an
order that rotates from round to round (so drift on a busy machine hits every case alike):

- S1: a sweep of 1 trial; SN: ``--trials`` N trials one at a time (``max_concurrent`` 1); PN: N at once;
- F: ``fit`` of the same trial in this process with one thread (as a one-CPU trial runs), the plain alternative.

Each sweep's wall time is ``fixed + N x (F + per_trial)``, hence, per round,
``per_trial = (SN - S1) / (N - 1) - F`` (scheduling, reports, checkpoint copies, MLflow runs) and
``fixed = S1 - F - per_trial`` (MLflow parent run, Tune's setup, starting the trial process: a Ray
worker, importing torch, MLflow and the pipeline, torch's first-use imports; outputs). Parallel
efficiency is ``SN / PN / N`` (1.0 when N trials on N CPUs take the time of one), end to end and
for the trials alone (``(SN - fixed) / (PN - fixed) / N``); trials per hour ``3600 N / PN``; and
``S1 / F``, a one-trial sweep against the plain ``fit``. Every figure is computed within a round
and printed as min / median / max over the rounds, with the 1-minute load average before and after.

Why the per-trial overhead came out negative before: it was the difference of single, sequential
measurements (SN - S1, minus F), a few seconds of noise on figures of tens, and F was a cold
``fit``, the first in its process, which pays about 1 s of imports (``torch._dynamo``, on the first
optimizer) that a trial process reusing its actor pays once per sweep, inside ``fixed``. Now F is
warm, each figure comes from one round's interleaved cases, and the spread over rounds shows the
noise: a median near zero with a range across it means "below what this machine resolves".

``PYTHONPATH=. python bench/sweep_throughput.py --trials 2 --cpus 2 --iterations 1000 --repeats 3``
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import signal
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import torch

from spread import spread
from pipeline.config import Params
from pipeline.degrade.imresize import imresize_uint8
from pipeline.imageio import modcrop, write_png
from pipeline.params_file import validate
from pipeline.tracking.store import ensure_experiment
from pipeline.train.loop import fit
from pipeline.tune.space import SearchSpace, TrialChoice
from pipeline.tune.sweep import run_sweep

SCALE = 2
SPLITS = {"train": (8, 96), "val": (2, 64)}
CASES = ("S1", "SN", "PN", "F")


def write_data(root: Path, rng: np.random.Generator) -> Path:
    """Random-texture HR images and their bicubic x2 LR images in the prepare/degrade layout."""
    for split, (count, side) in SPLITS.items():
        for index in range(count):
            hr = modcrop(rng.integers(0, 256, (side, side, 3), dtype=np.uint8), SCALE)
            write_png(root / "hr" / split / f"img{index}.png", hr)
            write_png(root / "lr" / "bicubic" / f"x{SCALE}" / split / f"img{index}.png", imresize_uint8(hr, 1 / SCALE))
    return root


def sweep_params(root: Path, name: str, trials: int, iterations: int, max_concurrent: int) -> Params:
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
                  "storage_path": str(root / "ray_results"), "name": name},
    })


@contextlib.contextmanager
def local_ray(cpus: int) -> Iterator[float]:
    """A local Ray cluster with node address 127.0.0.1, shut down on exit (SIGTERM too); yields its start seconds."""
    import ray

    previous = signal.signal(signal.SIGTERM, signal.default_int_handler)  # SIGTERM unwinds like Ctrl-C
    started = time.perf_counter()
    try:
        ray.init(address="local", num_cpus=cpus, num_gpus=0, include_dashboard=False, _node_ip_address="127.0.0.1",
                 logging_level=logging.WARNING, log_to_driver=False)
        yield time.perf_counter() - started
    finally:
        ray.shutdown()
        signal.signal(signal.SIGTERM, previous)


def seconds(action: Callable[[int], object], round_index: int) -> float:
    started = time.perf_counter()
    action(round_index)
    return time.perf_counter() - started


def derived(times: dict[str, float], n: int) -> dict[str, float]:
    """One round's figures from its four timings (see the module docstring)."""
    per_trial = (times["SN"] - times["S1"]) / (n - 1) - times["F"]
    fixed = times["S1"] - times["F"] - per_trial
    return {
        "per_trial_overhead_s": per_trial, "fixed_per_sweep_s": fixed,
        "efficiency": times["SN"] / times["PN"] / n,
        "efficiency_trials_only": (times["SN"] - fixed) / (times["PN"] - fixed) / n,
        "trials_per_hour": 3600 * n / times["PN"], "sweep_of_one_over_fit": times["S1"] / times["F"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=2, help="N: trials run one at a time, then at once")
    parser.add_argument("--cpus", type=int, default=2, help="CPUs of the local Ray cluster")
    parser.add_argument("--iterations", type=int, default=1000, help="training steps per trial")
    parser.add_argument("--repeats", type=int, default=3, help="rounds of the four interleaved cases")
    parser.add_argument("--out", type=Path, default=None, help="also write the figures as JSON here")
    args = parser.parse_args()
    n = args.trials
    if n < 2:
        parser.error("--trials must be at least 2 (per-trial overhead comes from S_N - S_1)")
    if args.cpus < n:
        parser.error(f"--cpus must be at least --trials ({n}): PN runs all trials at once, one CPU each")

    load_before = os.getloadavg()
    rounds = []
    with tempfile.TemporaryDirectory(prefix="sweep-bench-") as folder, local_ray(args.cpus) as ray_start:
        root = Path(folder)
        write_data(root / "data", np.random.default_rng(0))
        torch.set_num_threads(1)  # as a Ray trial with one CPU runs
        reference = sweep_params(root, "reference", 1, args.iterations, 1)
        ensure_experiment(reference.tracking.uri, "bench", root / "mlartifacts")  # SQLite tables: not timed
        trial = SearchSpace(reference.sweep).trial_params(reference, TrialChoice("l1", {}, 0))
        run_sweep(sweep_params(root, "warm-up", 1, args.iterations, 1))
        fit(trial, root / "fit-warm-up")
        cases = {
            "S1": lambda r: run_sweep(sweep_params(root, f"S1-{r}", 1, args.iterations, 1)),
            "SN": lambda r: run_sweep(sweep_params(root, f"SN-{r}", n, args.iterations, 1)),
            "PN": lambda r: run_sweep(sweep_params(root, f"PN-{r}", n, args.iterations, n)),
            "F": lambda r: fit(trial, root / f"fit-{r}"),
        }
        for r in range(args.repeats):
            order = CASES[r % len(CASES):] + CASES[:r % len(CASES)]
            times = {name: seconds(cases[name], r) for name in order}
            rounds.append({"order": list(order), "seconds": times, "figures": derived(times, n)})
            print(f"round {r + 1}/{args.repeats} ({' '.join(order)}): "
                  + ", ".join(f"{name} {times[name]:.2f} s" for name in CASES), flush=True)
    load_after = os.getloadavg()

    summary = {name: spread([r["seconds"][name] for r in rounds]) for name in CASES}
    summary.update({key: spread([r["figures"][key] for r in rounds]) for key in rounds[0]["figures"]})
    print(f"{n} trials, {args.cpus} CPUs, {args.iterations} iterations, {args.repeats} interleaved warm rounds; "
          f"Ray start {ray_start:.1f} s (once, outside every figure); load average (1/5/15 min) "
          f"before {' '.join(f'{v:.2f}' for v in load_before)}, after {' '.join(f'{v:.2f}' for v in load_after)}")
    for key, values in summary.items():
        label = f"{key} (s)" if key in CASES else key
        print(f"{label:>28}: {values['min']:8.3f} / {values['median']:8.3f} / {values['max']:8.3f}  (min / median / max)")
    if args.out:
        args.out.write_text(json.dumps({
            "trials": n, "cpus": args.cpus, "iterations": args.iterations, "repeats": args.repeats,
            "ray_start_seconds": ray_start, "load_average_before": load_before, "load_average_after": load_after,
            "summary": summary, "rounds": rounds}, indent=2))


if __name__ == "__main__":
    main()
