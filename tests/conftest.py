"""Fixtures shared across the test folders."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from bench.synthetic_photo import synthetic_photo
from pipeline.config import Params
from pipeline.degrade.imresize import imresize_uint8
from pipeline.imageio import modcrop, write_png
from pipeline.models.registry import build_model
from pipeline.objectives.registry import build_objective
from pipeline.params_file import validate
from pipeline.train.callbacks import Callback
from pipeline.train.checkpoint import checkpoint_meta, save_checkpoint

TINY_SCALE = 2
TINY_SPLITS = {"hr/train": (6, 64), "hr/val": (2, 48), "benchmarks/Tiny": (2, 40)}


class CrashAtValidation(Callback):
    """Raises ``KeyboardInterrupt`` at the validation of ``iteration``: a run killed mid-way, for resume tests."""

    def __init__(self, iteration: int) -> None:
        self.iteration = iteration

    def on_validation(self, iteration, metrics, samples):
        if iteration == self.iteration:
            raise KeyboardInterrupt("simulated crash")


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
