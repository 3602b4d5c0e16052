"""Fixtures shared across the test folders."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from pipeline.config import Params, validate
from pipeline.degrade.imresize import imresize_uint8
from pipeline.imageio import modcrop, write_png
from pipeline.models.registry import build_model
from pipeline.objectives.registry import build_objective
from pipeline.train.checkpoint import checkpoint_meta, save_checkpoint

TINY_SCALE = 2
TINY_SPLITS = {"hr/train": (6, 64), "hr/val": (2, 48), "benchmarks/Tiny": (2, 40)}


def synthetic_photo(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A smooth colour image with sharp-edged discs: learnable structure at every scale."""
    y, x = np.mgrid[0:height, 0:width] / max(height, width)
    image = np.full((height, width, 3), 0.5)
    for channel in range(3):
        for _ in range(4):
            fy, fx = rng.uniform(-5, 5, size=2)
            image[..., channel] += rng.uniform(0.05, 0.15) * np.sin(2 * np.pi * (fy * y + fx * x) + rng.uniform(0, 6.3))
    for _ in range(3):
        cy, cx, radius = rng.uniform(0.1, 0.9), rng.uniform(0.1, 0.9), rng.uniform(0.08, 0.25)
        image[(y - cy) ** 2 + (x - cx) ** 2 < radius**2] += rng.uniform(-0.3, 0.3, size=3)
    return np.clip(image * 255 + 0.5, 0, 255).astype(np.uint8)


@pytest.fixture(autouse=True)
def ordinary_floats():
    """``fit``, ``evaluate`` and ``upscale`` flush subnormal floats for the rest of their process
    (``pipeline.train.device.flush_subnormals``); each test starts and ends with IEEE floats."""
    torch.set_flush_denormal(False)
    yield
    torch.set_flush_denormal(False)


@pytest.fixture
def tiny_data(tmp_path: Path) -> Params:
    """A prepared and degraded (bicubic, x2) data folder of small synthetic images, and Params that
    train a tiny EDSR with L1 on it on CPU in about a second: 6 train 64x64, 2 val 48x48 and a
    benchmark ``Tiny`` of 2 40x40 images."""
    rng = np.random.default_rng(0)
    data_dir = tmp_path / "data"
    for folder, (count, side) in TINY_SPLITS.items():
        split = folder.split("/")[1]
        for index in range(count):
            hr = synthetic_photo(rng, side, side)
            write_png(data_dir / folder / f"img{index}.png", hr)
            lr = imresize_uint8(modcrop(hr, TINY_SCALE), 1 / TINY_SCALE)
            write_png(data_dir / "lr" / "bicubic" / f"x{TINY_SCALE}" / split / f"img{index}.png", lr)
    return validate({
        "seed": 0,
        "data_dir": str(data_dir),
        "metrics": {"lpips": {"enabled": False}},
        "model": {"name": "edsr", "args": {"n_blocks": 2, "n_feats": 16}},
        "loss": {"objective": "regression", "terms": {"l1": 1.0}},
        "train": {"scale": TINY_SCALE, "iterations": 12, "batch_size": 4, "patch_size": 32, "lr": 1e-3,
                  "scheduler": {"name": "cosine", "warmup": 2}, "val_every": 6, "checkpoint_every": 6,
                  "log_every": 3, "device": "cpu", "progress": False},
        "tracking": {"enabled": False},
    })


@pytest.fixture
def tiny_checkpoint(tmp_path: Path) -> Path:
    """``best.pt`` of an untrained, seeded EDSR (1 block, 8 features) x2 with the regression head:
    a real weights-only checkpoint for inference, upscale and tracking tests, written in milliseconds."""
    torch.manual_seed(0)
    params = validate({"model": {"name": "edsr", "args": {"n_blocks": 1, "n_feats": 8}}, "train": {"scale": 2}})
    net = build_model(params.model.name, params.train.scale, params.model.args)
    objective = build_objective(params.loss, net.feature_channels, params.train.scale)
    with torch.no_grad():
        objective.head.conv.bias.fill_(0.5)  # mid-grey offset: random outputs vary instead of clamping at 0
    path = tmp_path / "run" / "checkpoints" / "best.pt"
    save_checkpoint(path, {"model": net.state_dict(), "objective": objective.state_dict(),
                           "meta": checkpoint_meta(params, net.feature_channels)})
    return path
