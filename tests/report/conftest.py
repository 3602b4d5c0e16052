"""A tiny sweep output for the report tests, built once per module: synthetic benchmarks with LR
images at x2 and x3, and the models of two objectives at x2, as ``pipeline.tune`` lays them out.

``l1`` has two seeds: seed 0 trained for a few iterations by ``fit``, seed 1 an untrained network
of the same shape; its ``best.pt`` is seed 0. ``cs`` has one untrained model (no ``seeds/``).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from pipeline.config import Params
from pipeline.degrade.imresize import imresize_uint8
from pipeline.imageio import modcrop, write_png
from pipeline.models.registry import build_model
from pipeline.objectives.registry import build_objective
from pipeline.params_file import validate
from pipeline.train.checkpoint import checkpoint_meta, save_checkpoint
from pipeline.train.loop import fit
from bench.synthetic_photo import synthetic_photo

IMAGES = {"hr/train": (4, 48, 48), "hr/val": (1, 40, 40), "benchmarks/Tiny": (2, 40, 40),
          "benchmarks/Wide": (1, 36, 52)}
LR_SCALES = {"train": (2,), "val": (2,), "Tiny": (2, 3), "Wide": (2, 3)}
NETWORK = {"name": "edsr", "args": {"n_blocks": 1, "n_feats": 8}}


def study_params(root: Path, **sections: Any) -> Params:
    """Params for the study under ``root`` on CPU, LPIPS and tracking off; ``sections`` override whole keys."""
    data = {
        "seed": 0, "data_dir": str(root / "data"), "models_dir": str(root / "models"),
        "results_dir": str(root / "results"), "metrics": {"lpips": {"enabled": False}}, "model": NETWORK,
        "loss": {"objective": "regression", "terms": {"l1": 1.0}},
        "train": {"scale": 2, "iterations": 6, "batch_size": 2, "patch_size": 24, "lr": 1e-3, "val_every": 6,
                  "checkpoint_every": 6, "log_every": 3, "device": "cpu", "progress": False},
        "tracking": {"enabled": False},
        "evaluate": {"scales": [2, 3], "tile": 24, "tile_overlap": 4, "crop_size": 24, "device": "cpu"},
    }
    data.update(sections)
    return validate(data)


def _write_data(data_dir: Path) -> None:
    rng = np.random.default_rng(0)
    for folder, (count, height, width) in IMAGES.items():
        split = folder.split("/")[1]
        for index in range(count):
            hr = synthetic_photo(rng, height, width)
            write_png(data_dir / folder / f"img{index}.png", hr)
            for scale in LR_SCALES[split]:
                lr = imresize_uint8(modcrop(hr, scale), 1 / scale)
                write_png(data_dir / "lr" / "bicubic" / f"x{scale}" / split / f"img{index}.png", lr)


def _untrained_checkpoint(params: Params, seed: int, path: Path) -> None:
    torch.manual_seed(seed)
    net = build_model(params.model.name, params.train.scale, params.model.args)
    objective = build_objective(params.loss, net.feature_channels, params.train.scale)
    save_checkpoint(path, {"model": net.state_dict(), "objective": objective.state_dict(),
                           "meta": checkpoint_meta(params, net.feature_channels)})


def write_info(folder: Path, info: dict[str, Any]) -> None:
    (folder / "info.json").write_text(json.dumps(info))


@pytest.fixture(scope="session")
def study(tmp_path_factory) -> Path:
    """The study's root folder (``data/`` and ``models/``), built once; tests write their results
    elsewhere (``results_dir``) and copy it before changing anything in it."""
    root = tmp_path_factory.mktemp("study")
    _write_data(root / "data")
    models = root / "models"
    l1 = study_params(root)
    trained = fit(l1, root / "runs" / "l1-seed0").best_checkpoint
    (models / "l1" / "seeds").mkdir(parents=True)
    shutil.copy(trained, models / "l1" / "seeds" / "0.pt")
    shutil.copy(trained, models / "l1" / "best.pt")
    _untrained_checkpoint(study_params(root, seed=1), 1, models / "l1" / "seeds" / "1.pt")
    write_info(models / "l1", {"objective": "l1"})
    _untrained_checkpoint(study_params(root, loss={"objective": "cs", "terms": {}}), 2, models / "cs" / "best.pt")
    write_info(models / "cs", {"objective": "cs"})
    return root


@pytest.fixture
def study_copy(study: Path, tmp_path: Path) -> Path:
    """A private copy of the study a test may change."""
    return Path(shutil.copytree(study, tmp_path / "study"))
