"""The default study's ``evaluate`` stage on its own, quiet and next to a busy CPU burner.

Builds, in a temporary folder, what ``evaluate`` reads after the default study: ``data/`` prepared
and degraded from ``params.yaml`` (with the benchmark folders given), and ``models/<objective>/``
holding ``best.pt`` and one checkpoint per seed for every objective of ``sweep.objectives``, with
seeded untrained weights (time does not depend on the weights). Then times
``python -m pipeline evaluate`` (tracking off) in fresh processes, interleaved within each repeat
with the order rotating:
- ``quiet``: evaluate alone;
- ``burner``: evaluate while one busy-looping process (started and stopped by this bench) runs;
- ``before`` (with ``--before DIR``): evaluate from another checkout, e.g. the main branch, quiet.
Prints seconds min / median / max per case, and per repeat the ratios burner / quiet and
quiet / before. ``OMP_NUM_THREADS`` is passed through (unset: evaluate picks the CPUs it has).

Run from the project root, e.g.
``PYTHONPATH=. python bench/evaluate_speed.py --benchmarks ../shared/benchmarks/Set5 ../shared/benchmarks/Set14``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import yaml

from spread import spread_text
from pipeline.data.prepare import prepare_all
from pipeline.degrade.run import degrade_all
from pipeline.models.registry import build_model
from pipeline.objectives.registry import build_objective
from pipeline.params_file import load_params, validate
from pipeline.train.checkpoint import checkpoint_meta, save_checkpoint

BURNER = "while True: pass"


def write_study(root: Path, benchmarks: list[Path], only: list[str] | None) -> Path:
    """Data and untrained models of the default study under ``root``; returns the params file evaluate reads."""
    base = load_params(Path("params.yaml"), []).model_dump(mode="json")
    base.update(data_dir=str(root / "data"), models_dir=str(root / "models"), results_dir=str(root / "results"))
    base["prepare"]["benchmarks"] = {folder.name: {"kind": "folder", "path": str(folder.resolve())}
                                     for folder in benchmarks}
    base["degrade"]["scales"] = sorted(set(base["evaluate"]["scales"]))
    base["tracking"]["enabled"] = False
    params = validate(base)
    prepare_all(params, progress=False)
    degrade_all(params)
    for name, settings in params.sweep.objectives.items():
        if only and name not in only:
            continue
        trained = validate({**base, **settings})
        for index, path in enumerate([Path(name) / "best.pt"] + [Path(name) / "seeds" / f"{seed}.pt"
                                                                 for seed in range(params.sweep.seeds)]):
            torch.manual_seed(index)
            net = build_model(trained.model.name, trained.train.scale, trained.model.args)
            objective = build_objective(trained.loss, net.feature_channels, trained.train.scale)
            save_checkpoint(root / "models" / path, {"model": net.state_dict(), "objective": objective.state_dict(),
                                                     "meta": checkpoint_meta(trained, net.feature_channels)})
    params_file = root / "params.yaml"
    params_file.write_text(yaml.safe_dump(base))
    return params_file


def timed_evaluate(project: Path, params_file: Path, burner: bool) -> float:
    """Seconds of ``python -m pipeline evaluate`` run from ``project``, optionally beside a busy process."""
    busy = subprocess.Popen([sys.executable, "-c", BURNER]) if burner else None
    try:
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "pipeline", "-q", "evaluate", "--params", str(params_file)],
                       cwd=project, env={**os.environ, "PYTHONPATH": str(project)}, check=True,
                       stdout=subprocess.DEVNULL)
        return time.perf_counter() - start
    finally:
        if busy is not None:
            busy.kill()
            busy.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--benchmarks", nargs="+", type=Path, required=True, help="folders of HR benchmark images")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--only", nargs="*", default=None, help="objectives to include (default: all of the study)")
    parser.add_argument("--no-burner", action="store_true", help="skip the burner case")
    parser.add_argument("--before", type=Path, default=None, help="another checkout to time quietly, e.g. main")
    args = parser.parse_args()
    here = Path.cwd()
    with tempfile.TemporaryDirectory(prefix="srloss-evaluate-") as tmp:
        params_file = write_study(Path(tmp), args.benchmarks, args.only)
        cases = {"quiet": (here, False)} if args.no_burner else {"quiet": (here, False), "burner": (here, True)}
        if args.before:
            cases["before"] = (args.before.resolve(), False)
        names = list(cases)
        times: dict[str, list[float]] = {name: [] for name in names}
        loads = []
        for repeat in range(args.repeats):
            for name in names[repeat % len(names):] + names[:repeat % len(names)]:
                loads.append(os.getloadavg()[0])
                times[name].append(timed_evaluate(cases[name][0], params_file, cases[name][1]))
    print(f"evaluate of the default study ({', '.join(args.only) if args.only else 'all objectives'}) on {', '.join(folder.name for folder in args.benchmarks)}; "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}, {len(os.sched_getaffinity(0))} CPUs, "
          f"{args.repeats} interleaved repeats; 1-min load average before each run {spread_text(loads)}")
    for name in names:
        print(f"{name:>7}: {spread_text(times[name])} s (min / median / max)")
    if "burner" in times:
        print(f"burner / quiet: {spread_text([b / q for b, q in zip(times['burner'], times['quiet'])])} (target <= 2)")
    if args.before:
        print(f"quiet / before: {spread_text([q / b for q, b in zip(times['quiet'], times['before'])])}")


if __name__ == "__main__":
    main()
