"""GPU check: the training loop, every objective, CUDA against CPU, tiled inference and the CUDA-only tests.

One command on a CUDA machine, with tracking off and no Ray (sized to take well under 8 minutes on one
H200; an estimate, since it has not run there yet; ``seconds`` in the JSON records each section's time):
``PYTHONPATH=. python bench/gpu_check.py --out gpu-check``; ``--smoke`` runs every section with tiny
sizes on the CPU in seconds (the test suite does). Writes ``OUT/gpu_check.json`` and ``OUT/gpu_check.md``.

Sections (``ratio`` entries give min, median and max over interleaved rounds):

- ``training``: EDSR-baseline (16 x 64, x2, batch 16, HR patch 96, L1) trained by ``fit`` and by a
  plain torch loop (the same network, a conv head, ``l1_loss``, Adam, the same ``DataLoader`` over
  ``PairedPatchDataset``) in fp32, bf16 AMP, bf16 + channels_last, bf16 + channels_last + compile.
  Step time = wall time between two training logs after warm-up (``fit`` reads the logged losses
  there, the plain loop reads its loss), over the steps between; ratio = fit / plain, target <= 1.10.
- ``data_bound``: ``bench/train_throughput.py`` at the paper's setting (bf16, channels_last,
  ``train.num_workers`` of ``params-paper.yaml``): step time drawing batches through the loader over
  step time on one pre-loaded batch, target <= 1.05.
- ``objectives``: one ``train_step`` in bf16 of every registered objective, and of L1 plus each
  registered term: median step time over L1's (``bench/loss_overhead.py``'s interleaving) and the
  peak memory of one step beyond what was allocated before it. Terms that need ImageNet VGG
  weights are reported unavailable unless the weights are in the torch hub cache.
- ``cpu_vs_device``: a short ``fit`` (EDSR 4 x 32) on the device and on the CPU from the same seed:
  the largest relative difference of the logged losses (tolerance ``CURVE_RTOL``; the device's
  float32 convolutions may use TF32), and the final validation PSNR of bf16 AMP against float32 on
  the device (target: within ``PSNR_TOLERANCE_DB``).
- ``tiling``: ``upscale_image`` in tiles with an overlap equal to the network's receptive radius
  (measured: the farthest LR pixel with a non-zero gradient of the centre output pixel) against
  one whole-image window: the largest absolute difference of the uint8 outputs (0 = equal), and
  output MP/s of the tiled path against a plain forward of the whole image.
- ``cuda_tests``: ``pytest -m cuda`` on the test files that carry the ``cuda`` marker.

Imports only the core path (``pipeline.train``, ``objectives``, ``models``, ``inference``): no Ray,
MLflow, DVC or LPIPS. ``pipeline.config`` needs pydantic and the training augmentation needs
albumentations: carry their wheels where they are missing (docs/gpu.md).
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
import xml.etree.ElementTree as ElementTree
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

import loss_overhead
import train_throughput
from spread import spread
from synthetic_photo import synthetic_photo
from pipeline.config import LossConfig, Params, TrainConfig
from pipeline.data.paired import PairedPatchDataset, load_pairs
from pipeline.degrade.imresize import imresize_uint8
from pipeline.imageio import modcrop, write_png
from pipeline.inference import SuperResolver, upscale_image
from pipeline.models.registry import build_model
from pipeline.objectives import pretrained
from pipeline.objectives.registry import OBJECTIVES, TERMS, build_objective
from pipeline.params_file import validate
from pipeline.train.callbacks import Callback
from pipeline.train.device import configure_determinism, plan_device
from pipeline.train.loop import fit, train_step

ROOT = Path(__file__).resolve().parents[1]
STEP_RATIO_TARGET = 1.10
DATA_BOUND_TARGET = 1.05
CURVE_RTOL = 0.02
PSNR_TOLERANCE_DB = 0.05
PAPER_WORKERS = 4  # train.num_workers in params-paper.yaml
PHOTO_DISCS = {"discs": 12, "centres": (0.05, 0.95), "radii": (0.02, 0.15)}  # smaller discs than the tests'
VARIANTS = {  # cumulative: each adds one switch to the one before
    "fp32": {"amp": "none", "channels_last": False, "compile": False},
    "bf16": {"amp": "bf16", "channels_last": False, "compile": False},
    "bf16+channels_last": {"amp": "bf16", "channels_last": True, "compile": False},
    "bf16+channels_last+compile": {"amp": "bf16", "channels_last": True, "compile": True},
}
TRAIN_IMAGES, VAL_IMAGES = 6, 2


@dataclass(frozen=True)
class Sizes:
    """Everything that differs between the full check and ``--smoke``."""

    blocks: int
    feats: int
    batch: int
    patch: int
    train_side: int  # HR side of each synthetic training image
    val_side: int
    workers: int
    fit_iterations: int
    fit_warmup: int  # iterations (a multiple of log_every) before timing starts: compile, cuDNN, loader start
    log_every: int
    rounds: int
    throughput_iters: int
    throughput_warmup: int
    throughput_images: int
    objective_iters: int
    compare_blocks: int
    compare_feats: int
    compare_batch: int
    compare_patch: int
    compare_iterations: int
    compare_log_every: int
    tile_image: tuple[int, int]  # LR height, width
    tile: int
    forward_repeats: int


FULL = Sizes(blocks=16, feats=64, batch=16, patch=96, train_side=1020, val_side=256, workers=PAPER_WORKERS,
             fit_iterations=400, fit_warmup=100, log_every=50, rounds=3, throughput_iters=100, throughput_warmup=10,
             throughput_images=8, objective_iters=10, compare_blocks=4, compare_feats=32, compare_batch=8,
             compare_patch=48, compare_iterations=300, compare_log_every=20, tile_image=(678, 1020), tile=256,
             forward_repeats=3)
SMOKE = Sizes(blocks=2, feats=8, batch=2, patch=32, train_side=64, val_side=48, workers=0, fit_iterations=6,
              fit_warmup=2, log_every=2, rounds=2, throughput_iters=4, throughput_warmup=1, throughput_images=2,
              objective_iters=2, compare_blocks=1, compare_feats=8, compare_batch=2, compare_patch=32,
              compare_iterations=6, compare_log_every=2, tile_image=(40, 36), tile=24, forward_repeats=2)


class LogClock(Callback):
    """Wall-clock time and ``train/total`` at every training log; ``fit`` reads the losses to the host
    there, so the device has finished every earlier step."""

    def __init__(self) -> None:
        self.times: dict[int, float] = {}
        self.losses: dict[int, float] = {}

    def on_train_log(self, iteration: int, logs: dict[str, float]) -> None:
        self.times[iteration] = time.perf_counter()
        self.losses[iteration] = logs["train/total"]


def seconds_per_step(times: dict[int, float], warmup: int) -> float:
    """Mean step time from the log at iteration ``warmup`` to the last log."""
    last = max(times)
    return (times[last] - times[warmup]) / (last - warmup)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def write_data(folder: Path, sizes: Sizes, scale: int) -> Path:
    """A prepared and degraded (bicubic, ``scale``) data folder of synthetic images."""
    rng = np.random.default_rng(0)
    for split, count, side in (("train", TRAIN_IMAGES, sizes.train_side), ("val", VAL_IMAGES, sizes.val_side)):
        for index in range(count):
            hr = modcrop(synthetic_photo(rng, side, side, **PHOTO_DISCS), scale)
            write_png(folder / "hr" / split / f"img{index}.png", hr)
            write_png(folder / "lr" / "bicubic" / f"x{scale}" / split / f"img{index}.png", imresize_uint8(hr, 1 / scale))
    return folder


def run_params(data_dir: Path, device: str, model_args: dict[str, int], batch: int, patch: int, iterations: int,
               log_every: int, workers: int, variant: dict[str, Any]) -> Params:
    """Params of one ``fit`` run: L1, tracking and LPIPS off, one validation and checkpoint at the end."""
    return validate({
        "data_dir": str(data_dir),
        "metrics": {"lpips": {"enabled": False}},
        "model": {"name": "edsr", "args": model_args},
        "loss": {"objective": "regression", "terms": {"l1": 1.0}},
        "train": {"scale": 2, "iterations": iterations, "batch_size": batch, "patch_size": patch,
                  "scheduler": {"name": "constant"}, "val_every": iterations, "checkpoint_every": iterations,
                  "log_every": log_every, "num_workers": workers, "device": device, "progress": False, **variant},
        "tracking": {"enabled": False},
    })


def fit_run(params: Params, run_dir: Path) -> tuple[LogClock, dict[str, float]]:
    clock = LogClock()
    result = fit(params, run_dir, callbacks=[clock])
    return clock, result.final_metrics


def plain_run(params: Params, pairs: list, device: torch.device) -> dict[int, float]:
    """The same steps as ``fit`` in a plain torch loop; wall-clock times at its log iterations."""
    config = params.train
    memory_format = torch.channels_last if config.channels_last else torch.contiguous_format
    use_bf16 = config.amp == "bf16" and device.type == "cuda"
    torch.manual_seed(params.seed)
    net = build_model("edsr", config.scale, params.model.args).to(device, memory_format=memory_format)
    head = nn.Conv2d(net.feature_channels, 3, 3, padding=1).to(device, memory_format=memory_format)
    optimizer = torch.optim.Adam([*net.parameters(), *head.parameters()], lr=config.lr, betas=config.betas)
    train_net = torch.compile(net) if config.compile and device.type == "cuda" else net
    dataset = PairedPatchDataset(pairs, config.patch_size, config.scale, config.batch_size, params.seed)
    loader = DataLoader(dataset, batch_size=None, sampler=range(config.iterations), num_workers=config.num_workers,
                        pin_memory=device.type == "cuda")
    times = {}
    for done, batch in enumerate(loader, start=1):
        lr, hr = (batch[key].to(device, non_blocking=True).float().div_(255).contiguous(memory_format=memory_format)
                  for key in ("lr", "hr"))
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16):
            loss = F.l1_loss(head(train_net(lr)), hr)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if done % config.log_every == 0:
            loss.item()
            times[done] = time.perf_counter()
    return times


def check_training(sizes: Sizes, data_dir: Path, device: torch.device, work: Path) -> dict[str, Any]:
    """``fit`` against the plain loop, rounds alternating between them, for each variant."""
    model_args = {"n_blocks": sizes.blocks, "n_feats": sizes.feats}
    pairs = load_pairs(data_dir, "bicubic", 2, "train")
    variants = {}
    for name, variant in VARIANTS.items():
        params = run_params(data_dir, str(device), model_args, sizes.batch, sizes.patch, sizes.fit_iterations,
                            sizes.log_every, sizes.workers, variant)
        setup = plan_device(params.train)
        project, plain = [], []
        for round_index in range(sizes.rounds):
            clock, _ = fit_run(params, work / f"{name}-{round_index}")
            project.append(seconds_per_step(clock.times, sizes.fit_warmup))
            plain.append(seconds_per_step(plain_run(params, pairs, device), sizes.fit_warmup))
        ratios = [a / b for a, b in zip(project, plain)]
        variants[name] = {
            "amp": str(setup.amp_dtype).removeprefix("torch.") if setup.amp_dtype else "none",
            "channels_last": setup.channels_last, "compile": setup.compile,
            "fit_ms": 1e3 * statistics.median(project), "plain_ms": 1e3 * statistics.median(plain),
            "ratio": spread(ratios), "meets_target": statistics.median(ratios) <= STEP_RATIO_TARGET,
        }
    return {"model": f"EDSR {sizes.blocks}x{sizes.feats} x2, batch {sizes.batch}, HR patch {sizes.patch}, L1",
            "iterations": sizes.fit_iterations, "timed_from": sizes.fit_warmup, "rounds": sizes.rounds,
            "workers": sizes.workers, "target": STEP_RATIO_TARGET, "variants": variants}


def check_data_bound(sizes: Sizes, device: torch.device, work: Path) -> dict[str, Any]:
    arguments = ["--blocks", str(sizes.blocks), "--feats", str(sizes.feats), "--patch", str(sizes.patch),
                 "--batch", str(sizes.batch), "--iters", str(sizes.throughput_iters),
                 "--warmup", str(sizes.throughput_warmup), "--rounds", str(sizes.rounds),
                 "--workers", str(sizes.workers), "--images", str(sizes.throughput_images),
                 "--device", str(device), "--amp", "bf16", "--channels-last"]
    measured = train_throughput.measure(train_throughput.argument_parser().parse_args(arguments), work)
    ratios = [b / a for a, b in zip(measured["preloaded_s"], measured["loading_s"])]
    return {"command": "python bench/train_throughput.py " + " ".join(arguments), "workers": sizes.workers,
            "preloaded_ms": 1e3 * statistics.median(measured["preloaded_s"]),
            "loading_ms": 1e3 * statistics.median(measured["loading_s"]),
            "sample_batch_ms": 1e3 * measured["crop_s"], "peak_mib": measured["peak_bytes"] / 2**20,
            "ratio": spread(ratios), "target": DATA_BOUND_TARGET,
            "meets_target": statistics.median(ratios) <= DATA_BOUND_TARGET}


def objective_cases() -> dict[str, dict[str, Any]]:
    """Every registered objective with its own terms, and L1 plus every other registered term (one
    name per class), as ``LossConfig`` fields."""
    cases: dict[str, dict[str, Any]] = {"l1": {"objective": "regression", "terms": {"l1": 1.0}}}
    for name in sorted(OBJECTIVES):
        if name != "regression":
            cases[name] = {"objective": name, "terms": {}}
    seen = {TERMS["l1"]}
    for name in sorted(TERMS):
        if TERMS[name] not in seen:
            seen.add(TERMS[name])
            cases[name] = {"objective": "regression", "terms": {"l1": 1.0, name: 0.1}}
    return cases


def missing_pretrained_weights(case: dict[str, Any]) -> str | None:
    """Why a case cannot run here without downloading ImageNet weights, or None."""
    for name in case["terms"]:
        arch = inspect.signature(TERMS[name].__init__).parameters.get("arch")
        if arch is not None and not pretrained.hub_checkpoint_path(arch.default).is_file():
            path = pretrained.hub_checkpoint_path(arch.default)
            return f"needs the ImageNet {arch.default.upper()} weights: put {path.name} in {path.parent}"
    return None


class TrainStep:
    """One bf16 ``train_step`` of a network + objective, as ``fit`` runs it (``step(lr, hr)``)."""

    def __init__(self, case: dict[str, Any], sizes: Sizes, device: torch.device, iterations: int):
        self.setup = plan_device(TrainConfig(device=str(device), amp="bf16"))
        torch.manual_seed(0)
        self.net = build_model("edsr", 2, {"n_blocks": sizes.blocks, "n_feats": sizes.feats}).to(device)
        self.objective = build_objective(LossConfig(**case), self.net.feature_channels, 2,
                                         total_iterations=iterations).to(device)
        self.optimizer = torch.optim.Adam([*self.net.parameters(), *self.objective.sr_parameters()], lr=1e-4)
        self.scaler = torch.amp.GradScaler(device.type, enabled=False)
        self.iteration = 0

    def step(self, lr: torch.Tensor, hr: torch.Tensor) -> None:
        train_step(self.net, self.objective, self.optimizer, self.scaler, self.setup, None, lr, hr, self.iteration)
        self.iteration += 1


def check_objectives(sizes: Sizes, device: torch.device) -> dict[str, Any]:
    generator = torch.Generator().manual_seed(0)
    hr = torch.rand(sizes.batch, 3, sizes.patch, sizes.patch, generator=generator).to(device)
    lr = F.avg_pool2d(hr, 2)
    cases = objective_cases()
    steppers, results = {}, {}
    for name, case in cases.items():
        results[name] = {"config": case}
        reason = missing_pretrained_weights(case)
        if reason is not None:
            results[name]["unavailable"] = reason
            continue
        try:
            stepper = TrainStep(case, sizes, device, sizes.objective_iters + 3)
            stepper.step(lr, hr)  # warm-up: Adam's moments, cuDNN's plans
            steppers[name] = stepper
        except Exception as error:  # one objective failing on this device must not hide the others' figures
            results[name]["error"] = f"{type(error).__name__}: {error}"
    peaks = {name: loss_overhead.peak_step_bytes(stepper, lr, hr, device) for name, stepper in steppers.items()}
    times = loss_overhead.interleaved_step_times(steppers, lr, hr, device, sizes.objective_iters)
    base = statistics.median(times["l1"])
    for name in steppers:
        median = statistics.median(times[name])
        results[name].update(step_ms=1e3 * median, ratio_to_l1=median / base, peak_mib=peaks[name] / 2**20)
    amp = plan_device(TrainConfig(device=str(device), amp="bf16")).amp_dtype
    return {"model": f"EDSR {sizes.blocks}x{sizes.feats} x2, batch {sizes.batch}, HR patch {sizes.patch}",
            "amp": str(amp).removeprefix("torch.") if amp else "none", "steps": sizes.objective_iters,
            "cases": results}


def check_cpu_vs_device(sizes: Sizes, data_dir: Path, device: torch.device, work: Path) -> dict[str, Any]:
    model_args = {"n_blocks": sizes.compare_blocks, "n_feats": sizes.compare_feats}

    def run(role: str, on: torch.device, amp: str) -> tuple[LogClock, dict[str, float]]:
        params = run_params(data_dir, str(on), model_args, sizes.compare_batch, sizes.compare_patch,
                            sizes.compare_iterations, sizes.compare_log_every, 0, {"amp": amp})
        return fit_run(params, work / f"compare-{role}-{on.type}-{amp}")  # role: the smoke run has device == cpu

    device_fp32, psnr_fp32 = run("device", device, "none")
    cpu_fp32, _ = run("reference", torch.device("cpu"), "none")
    _, psnr_bf16 = run("device", device, "bf16")
    differences = [abs(device_fp32.losses[i] - cpu_fp32.losses[i]) / abs(cpu_fp32.losses[i]) for i in cpu_fp32.losses]
    psnr_difference = abs(psnr_bf16["val/psnr"] - psnr_fp32["val/psnr"])
    return {"model": f"EDSR {sizes.compare_blocks}x{sizes.compare_feats} x2, batch {sizes.compare_batch}, "
                     f"HR patch {sizes.compare_patch}, L1",
            "iterations": sizes.compare_iterations, "device_losses": device_fp32.losses, "cpu_losses": cpu_fp32.losses,
            "max_relative_difference": max(differences), "tolerance": CURVE_RTOL,
            "cudnn_allow_tf32": torch.backends.cudnn.allow_tf32,
            "curves_agree": max(differences) <= CURVE_RTOL,
            "psnr_fp32": psnr_fp32["val/psnr"], "psnr_bf16": psnr_bf16["val/psnr"],
            "psnr_difference_db": psnr_difference, "psnr_tolerance_db": PSNR_TOLERANCE_DB,
            "psnr_within_tolerance": psnr_difference <= PSNR_TOLERANCE_DB}


def receptive_radius(resolver: SuperResolver, device: torch.device, side: int = 33) -> int:
    """LR pixels of context one output pixel depends on: the farthest LR pixel from the centre with
    a non-zero gradient of the centre output pixel (unclamped prediction, random input); the input
    grows until the dependence ends inside it."""
    while True:
        lr = torch.rand(1, 3, side, side, generator=torch.Generator().manual_seed(0)).to(device).requires_grad_()
        centre, scale = side // 2, resolver.scale
        output = resolver.objective.predict(resolver.net(lr))
        output[0, :, centre * scale, centre * scale].sum().backward()
        rows, cols = torch.nonzero(lr.grad.abs().sum(dim=(0, 1))).unbind(1)
        radius = int(max((rows - centre).abs().max(), (cols - centre).abs().max()))
        if radius < centre:
            return radius
        side = 2 * side + 1


def check_tiling(sizes: Sizes, device: torch.device) -> dict[str, Any]:
    configure_determinism(True)
    torch.manual_seed(0)
    net = build_model("edsr", 2, {"n_blocks": sizes.blocks, "n_feats": sizes.feats})
    objective = build_objective(LossConfig(), net.feature_channels, 2)
    with torch.no_grad():
        objective.head.conv.bias.fill_(0.5)  # mid-grey: an untrained network's output varies instead of clamping
    resolver = SuperResolver(net, objective, "edsr", "regression").to(device).eval()
    radius = receptive_radius(resolver, device)
    height, width = sizes.tile_image
    image = np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)

    def timed(run) -> tuple[Any, float]:
        seconds = []
        for _ in range(sizes.forward_repeats):
            synchronize(device)
            start = time.perf_counter()
            result = run()
            synchronize(device)
            seconds.append(time.perf_counter() - start)
        return result, statistics.median(seconds)

    lr = torch.from_numpy(image).permute(2, 0, 1).unsqueeze(0).float().div(255).to(device)
    with torch.inference_mode():
        whole = upscale_image(resolver, image, tile=max(height, width), overlap=0)
        tiled, tiled_seconds = timed(lambda: upscale_image(resolver, image, tile=sizes.tile, overlap=radius))
        _, plain_seconds = timed(lambda: resolver(lr))
    megapixels = whole.shape[0] * whole.shape[1] / 1e6
    difference = int(np.abs(tiled.astype(int) - whole.astype(int)).max())
    return {"model": f"EDSR {sizes.blocks}x{sizes.feats} x2 (untrained), float32",
            "image": f"{width}x{height} LR", "tile": sizes.tile, "overlap": radius, "receptive_radius": radius,
            "max_abs_difference": difference, "equal": difference == 0,
            "differing_fraction": float(np.mean(tiled != whole)),
            "tiled_mp_s": megapixels / tiled_seconds, "plain_mp_s": megapixels / plain_seconds,
            "tiled_over_plain": plain_seconds / tiled_seconds}


def cuda_test_files() -> list[str]:
    """Test files that hold a test marked ``cuda``."""
    return sorted(str(path.relative_to(ROOT)) for path in (ROOT / "tests").rglob("test_*.py")
                  if "pytest.mark.cuda" in path.read_text())


def check_cuda_tests(work: Path) -> dict[str, Any]:
    work.mkdir(parents=True, exist_ok=True)
    report = work / "cuda_tests.xml"
    selection = ["-m", "cuda", "-q", "-p", "no:cacheprovider", *cuda_test_files()]
    command = [sys.executable, "-m", "pytest", f"--junitxml={report}", *selection]
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    done = subprocess.run(command, cwd=ROOT, env=environment, capture_output=True, text=True)
    tests = []
    if report.is_file():
        for case in ElementTree.parse(report).getroot().iter("testcase"):
            outcome = next((child.tag for child in case if child.tag in ("failure", "error", "skipped")), "passed")
            tests.append({"name": f"{case.get('classname')}::{case.get('name')}", "outcome": outcome})
    junit_tags = {"passed": "passed", "failed": "failure", "errors": "error", "skipped": "skipped"}
    counts = {key: sum(t["outcome"] == tag for t in tests) for key, tag in junit_tags.items()}
    return {"command": " ".join(["python -m pytest", *selection]),
            "exit_status": done.returncode, **counts, "tests": tests,
            "output_tail": done.stdout[-2000:] + done.stderr[-2000:]}


def machine(device: torch.device, smoke: bool) -> dict[str, Any]:
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu"
    return {"device": str(device), "name": name, "torch": torch.__version__, "cuda": torch.version.cuda,
            "cpu_threads": torch.get_num_threads(), "cpus": os.cpu_count(), "smoke": smoke,
            "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}


def training_rows(training: dict[str, Any]) -> list[tuple[str, str, str, bool | None]]:
    rows = []
    for name, variant in training["variants"].items():
        r = variant["ratio"]
        rows.append((f"fit / plain loop, {name}", f"{variant['fit_ms']:.1f} / {variant['plain_ms']:.1f} ms/step, "
                     f"ratio {r['median']:.3f} ({r['min']:.3f}-{r['max']:.3f})", f"<= {training['target']:.2f}",
                     variant["meets_target"]))
    return rows


def data_bound_rows(data: dict[str, Any]) -> list[tuple[str, str, str, bool | None]]:
    r = data["ratio"]
    return [(f"data-bound ratio, {data['workers']} workers", f"{r['median']:.3f} ({r['min']:.3f}-{r['max']:.3f})",
             f"<= {data['target']:.2f}", data["meets_target"])]


def objective_rows(objectives: dict[str, Any]) -> list[tuple[str, str, str, bool | None]]:
    precision = "float32" if objectives["amp"] == "none" else objectives["amp"]
    rows = []
    for name, case in objectives["cases"].items():
        if "unavailable" in case:
            rows.append((f"one {precision} step, {name}", f"unavailable: {case['unavailable']}", "-", None))
        elif "error" in case:
            rows.append((f"one {precision} step, {name}", f"error: {case['error']}", "runs", False))
        else:
            rows.append((f"one {precision} step, {name}", f"{case['step_ms']:.1f} ms, {case['ratio_to_l1']:.2f}x L1, "
                         f"{case['peak_mib']:.0f} MiB peak", "-", None))
    return rows


def compare_rows(compare: dict[str, Any]) -> list[tuple[str, str, str, bool | None]]:
    return [("loss curve, device vs CPU", f"max relative difference {compare['max_relative_difference']:.2e}",
             f"<= {compare['tolerance']}", compare["curves_agree"]),
            ("final PSNR, bf16 vs fp32", f"{compare['psnr_bf16']:.3f} vs {compare['psnr_fp32']:.3f} dB",
             f"within {compare['psnr_tolerance_db']} dB", compare["psnr_within_tolerance"])]


def tiling_rows(tiling: dict[str, Any]) -> list[tuple[str, str, str, bool | None]]:
    return [(f"tiled (overlap {tiling['overlap']}) vs whole image", f"max difference {tiling['max_abs_difference']}, "
             f"{tiling['tiled_mp_s']:.2f} vs {tiling['plain_mp_s']:.2f} MP/s plain", "equal", tiling["equal"])]


def cuda_test_rows(tests: dict[str, Any]) -> list[tuple[str, str, str, bool | None]]:
    return [("pytest -m cuda", f"{tests['passed']} passed, {tests['failed']} failed, {tests['errors']} errors, "
             f"{tests['skipped']} skipped", "all pass", tests["exit_status"] == 0 and tests["skipped"] == 0)]


SECTIONS = {  # name -> (check, table rows); cheap and decisive first, so a run cut short keeps them
    "cuda_tests": (lambda sizes, data_dir, device, work: check_cuda_tests(work), cuda_test_rows),
    "tiling": (lambda sizes, data_dir, device, work: check_tiling(sizes, device), tiling_rows),
    "objectives": (lambda sizes, data_dir, device, work: check_objectives(sizes, device), objective_rows),
    "cpu_vs_device": (lambda sizes, data_dir, device, work: check_cpu_vs_device(sizes, data_dir, device, work),
                      compare_rows),
    "training": (lambda sizes, data_dir, device, work: check_training(sizes, data_dir, device, work), training_rows),
    "data_bound": (lambda sizes, data_dir, device, work: check_data_bound(sizes, device, work), data_bound_rows),
}


def markdown(results: dict[str, Any]) -> str:
    """The short table of ``gpu_check.md``: one row per figure, for the sections that ran."""
    m = results["machine"]
    lines = [f"# GPU check: {m['name']} ({m['device']}), torch {m['torch']}, {m['date']}"
             + (" (smoke sizes)" if m["smoke"] else ""), "",
             "| check | figure | target | met |", "| --- | --- | --- | --- |"]
    for name, (_, rows) in SECTIONS.items():
        section = results.get(name)
        if section is None:
            continue
        figures = ([(name, f"error: {section['error'].strip().splitlines()[-1]}", "runs", False)]
                   if "error" in section else rows(section))
        for check, figure, target, met in figures:
            lines.append(f"| {check} | {figure} | {target} | {'-' if met is None else 'yes' if met else 'NO'} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="folder for gpu_check.json and gpu_check.md")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes on the CPU: every code path in seconds")
    parser.add_argument("--device", default="auto", help="auto (CUDA when present), cuda, cuda:N; cpu with --smoke")
    parser.add_argument("--only", nargs="+", choices=list(SECTIONS), default=list(SECTIONS), help="sections to run")
    args = parser.parse_args()
    device = torch.device("cpu") if args.smoke else plan_device(TrainConfig(device=args.device)).device
    sizes = SMOKE if args.smoke else FULL
    results: dict[str, Any] = {"machine": machine(device, args.smoke), "sizes": asdict(sizes), "seconds": {}}
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as folder:
        work = Path(folder)
        data_dir = write_data(work / "data", sizes, scale=2)
        for name in (name for name in SECTIONS if name in args.only):
            section_start = time.perf_counter()
            try:
                results[name] = SECTIONS[name][0](sizes, data_dir, device, work / name)
            except Exception:  # record it and go on: a device run is one short try, the other sections still count
                results[name] = {"error": traceback.format_exc()}
            results["seconds"][name] = time.perf_counter() - section_start
            results["seconds"]["total"] = time.perf_counter() - started
            (args.out / "gpu_check.json").write_text(json.dumps(results, indent=2, default=str) + "\n")
            (args.out / "gpu_check.md").write_text(markdown(results))
            print(f"{name}: {results['seconds'][name]:.1f} s", flush=True)
    print(markdown(results))
    failed = [name for name in args.only if "error" in results[name]]
    if failed:
        sys.exit(f"error: section(s) {', '.join(failed)} failed; the traceback is under \"error\" in "
                 f"{args.out / 'gpu_check.json'}")


if __name__ == "__main__":
    main()
