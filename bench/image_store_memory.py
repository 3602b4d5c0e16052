"""Memory and start-up of N training processes on one node: images decoded into each process
(``train.image_store: memory``, the plain way) against mapped from the node's image store (``mapped``).

A DIV2K-sized synthetic set is generated first (``--pairs`` HR PNGs of 2040x1356, smooth colour
fields plus noise, and their x2 LR PNGs), under ``--folder`` (kept) or a temporary folder (deleted).
Each trial is its own Python process, as a Ray trial is: it imports torch and the pipeline and
records its memory (the "empty trial"), opens the train split, builds ``PairedPatchDataset`` (HR
patch 96, batch 16), draws ``--batches`` batches, then reads every page of every image (the state of
a long run, whose random crops have touched every page), and records its memory again while all N
trials are alive. Memory comes from ``/proc/self/smaps_rollup``:

- ``Rss``: resident pages, shared ones counted in every process that maps them;
- ``Anonymous``: the process's own memory (decoded copies live here; only swap can free it);
- ``Pss``: resident pages with each shared page divided among the processes mapping it, so the
  trials' Pss adds up to what the node holds for them. Mapped store pages are clean page cache:
  the kernel can drop and re-read them under pressure.

Figures per trial are "above the empty trial" (after - before). Start-up is from opening the data to
the first batch, and from the process's start to the first batch. Repeats interleave the two ways
(``memory`` with 1 trial, ``mapped`` with 1, 2 and 4), min / median / max over ``--repeats``; a
``memory`` run with N trials is skipped when N decoded copies would not fit in MemAvailable. The first
use on a node (no store yet: one trial builds it while the others wait) is timed once with 4 trials.

``PYTHONPATH=. python bench/image_store_memory.py --pairs 800 --repeats 3``
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from spread import spread_text

HR_HEIGHT, HR_WIDTH, SCALE = 1356, 2040, 2
GIB = 2**30
PAGE = 4096


def generate_pair(data_dir: Path, index: int) -> None:
    """One smooth colour field plus noise (PNG level 1, about the size and decode cost of a DIV2K
    photo) and its area-downscaled x2 LR image."""
    import cv2

    rng = np.random.default_rng(index)
    coarse = rng.uniform(0, 255, (HR_HEIGHT // 24, HR_WIDTH // 24, 3)).astype(np.float32)
    field = cv2.resize(coarse, (HR_WIDTH, HR_HEIGHT), interpolation=cv2.INTER_CUBIC)
    hr = np.clip(field + rng.normal(0, 6, field.shape), 0, 255).astype(np.uint8)
    lr = cv2.resize(hr, (HR_WIDTH // SCALE, HR_HEIGHT // SCALE), interpolation=cv2.INTER_AREA)
    for path, image in ((data_dir / "hr" / "train" / f"{index:04d}.png", hr),
                        (data_dir / "lr" / "bicubic" / f"x{SCALE}" / "train" / f"{index:04d}.png", lr)):
        path.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(path), image[..., ::-1], [cv2.IMWRITE_PNG_COMPRESSION, 1])


def generate(data_dir: Path, pairs: int) -> None:
    done = data_dir / "generated.json"
    if done.is_file() and json.loads(done.read_text()) == {"pairs": pairs}:
        return
    started = time.perf_counter()
    with ProcessPoolExecutor(len(os.sched_getaffinity(0))) as pool:
        list(pool.map(generate_pair, [data_dir] * pairs, range(pairs), chunksize=8))
    done.write_text(json.dumps({"pairs": pairs}))
    print(f"generated {pairs} pairs of {HR_WIDTH}x{HR_HEIGHT} in {time.perf_counter() - started:.0f} s", flush=True)


def memory_figures() -> dict[str, int]:
    """Bytes of ``Rss``, ``Anonymous`` and ``Pss`` of this process."""
    figures = {}
    for line in Path("/proc/self/smaps_rollup").read_text().splitlines()[1:]:
        key, value = line.split(":", 1)
        if key in ("Rss", "Anonymous", "Pss"):
            figures[key] = int(value.split()[0]) * 1024
    return figures


def trial(args: argparse.Namespace) -> None:
    """One trial process; prints one JSON line of its figures."""
    import torch

    from pipeline.data.image_store import stored_pairs
    from pipeline.data.paired import PairedPatchDataset, load_pairs

    torch.set_num_threads(1)
    before = memory_figures()
    opened = time.perf_counter()
    if args.mode == "mapped":
        pairs = stored_pairs(args.data, "bicubic", SCALE, "train", threads=len(os.sched_getaffinity(0)))
    else:
        pairs = load_pairs(args.data, "bicubic", SCALE, "train")
    dataset = PairedPatchDataset(pairs, 96, SCALE, 16, seed=0)
    dataset[0]
    first_batch = time.perf_counter()
    for iteration in range(1, args.batches):
        dataset[iteration]
    touched = sum(int(image.reshape(-1)[::PAGE].sum()) for pair in pairs for image in (pair.lr, pair.hr))
    _wait_for_all(args.sync, "ready", args.count)
    time.sleep(0.5)
    after = memory_figures()
    _wait_for_all(args.sync, "measured", args.count)
    print(json.dumps({"before": before, "after": after, "open_s": first_batch - opened,
                      "process_s": first_batch - args.spawned, "touched": touched}), flush=True)


def _wait_for_all(sync: Path, stage: str, trials: int) -> None:
    (sync / f"{stage}-{os.getpid()}").touch()
    while len(list(sync.glob(f"{stage}-*"))) < trials:
        time.sleep(0.05)


def run_trials(data_dir: Path, mode: str, trials: int, batches: int) -> list[dict]:
    """Start ``trials`` trial processes at once and collect their figures."""
    with tempfile.TemporaryDirectory(prefix="store-bench-sync-") as sync:
        command = [sys.executable, __file__, "--trial", "--mode", mode, "--data", str(data_dir), "--sync", sync,
                   "--count", str(trials), "--batches", str(batches)]
        processes = [subprocess.Popen([*command, "--spawned", repr(time.perf_counter())], stdout=subprocess.PIPE,
                                      text=True, env={**os.environ, "OMP_NUM_THREADS": "1"}) for _ in range(trials)]
        outputs = [process.communicate()[0] for process in processes]
    if any(process.returncode for process in processes):
        raise SystemExit(f"a {mode} trial failed; see its error above")
    return [json.loads(output.strip().splitlines()[-1]) for output in outputs]


def store_bytes(data_dir: Path) -> int:
    return sum(path.stat().st_size for path in (data_dir / "store").rglob("pairs.u8"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=800, help="synthetic 2040x1356 pairs (DIV2K train: 800)")
    parser.add_argument("--repeats", type=int, default=3, help="0: time the first use only")
    parser.add_argument("--batches", type=int, default=100, help="batches each trial draws before measuring")
    parser.add_argument("--trials", type=int, nargs="+", default=[1, 2, 4], help="concurrent trials to measure")
    parser.add_argument("--folder", type=Path, default=None, help="keep the synthetic set here (default: temporary)")
    parser.add_argument("--out", type=Path, default=None, help="also write the figures as JSON here")
    parser.add_argument("--trial", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--mode", help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--sync", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--spawned", type=float, help=argparse.SUPPRESS)
    parser.add_argument("--count", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.trial:
        trial(args)
        return
    folder = args.folder or Path(tempfile.mkdtemp(prefix="store-bench-"))
    try:
        measure(args, folder / "data")
    finally:
        if args.folder is None:
            shutil.rmtree(folder, ignore_errors=True)


def measure(args: argparse.Namespace, data_dir: Path) -> None:
    generate(data_dir, args.pairs)
    shutil.rmtree(data_dir / "store", ignore_errors=True)
    load_before = os.getloadavg()[0]
    first_use = run_trials(data_dir, "mapped", max(args.trials), args.batches)
    decoded_bytes = store_bytes(data_dir)
    print(f"{args.pairs} pairs, {decoded_bytes / GIB:.2f} GiB decoded; load average {load_before:.1f}", flush=True)
    print(f"first use on the node, {max(args.trials)} trials at once (one builds the store, the others wait): "
          f"start-up {spread_text([t['open_s'] for t in first_use], unit='s')}", flush=True)

    fits_in_memory = int(Path("/proc/meminfo").read_text().split("MemAvailable:")[1].split()[0]) * 1024
    runs = [("memory", n) for n in args.trials if n * decoded_bytes < 0.8 * fits_in_memory] + \
           [("mapped", n) for n in args.trials] if args.repeats else []
    skipped = [n for n in args.trials if ("memory", n) not in runs] if args.repeats else []
    results: dict[str, list[list[dict]]] = {f"{mode} x{n}": [] for mode, n in runs}
    for repeat in range(args.repeats):
        for mode, n in runs[repeat % len(runs):] + runs[: repeat % len(runs)]:  # rotate the order each repeat
            results[f"{mode} x{n}"].append(run_trials(data_dir, mode, n, args.batches))
    figures = {"pairs": args.pairs, "decoded_gib": decoded_bytes / GIB, "load_before": load_before,
               "load_after": os.getloadavg()[0], "first_use_open_s": [t["open_s"] for t in first_use], "runs": {}}
    print(f"per trial, above the empty trial, min / median / max over {args.repeats} repeats "
          f"(every trial of every repeat):")
    for name, repeats in results.items():
        trials = [t for repeat in repeats for t in repeat]
        deltas = {key: [t["after"][key] - t["before"][key] for t in trials] for key in ("Rss", "Anonymous", "Pss")}
        node_pss = [sum(t["after"]["Pss"] - t["before"]["Pss"] for t in repeat) for repeat in repeats]
        figures["runs"][name] = {**deltas, "node_pss": node_pss, "open_s": [t["open_s"] for t in trials],
                                 "process_s": [t["process_s"] for t in trials]}
        print(f"  {name:>10}: own (Anon) {spread_text(deltas['Anonymous'], unit='GiB', scale=GIB)}; Pss {spread_text(deltas['Pss'], unit='GiB', scale=GIB)}; "
              f"Rss {spread_text(deltas['Rss'], unit='GiB', scale=GIB)}; node's Pss for all trials {spread_text(node_pss, unit='GiB', scale=GIB)}; "
              f"start-up {spread_text(figures['runs'][name]['open_s'], unit='s')} from opening the data, "
              f"{spread_text(figures['runs'][name]['process_s'], unit='s')} from the process's start")
    if skipped:
        print(f"  memory with {', '.join(map(str, skipped))} trials skipped: "
              f"{decoded_bytes / GIB:.1f} GiB each would not fit in {fits_in_memory / GIB:.1f} GiB available")
    print(f"load average after {figures['load_after']:.1f}")
    if args.out:
        args.out.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
