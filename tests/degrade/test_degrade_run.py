import json
import logging
from pathlib import Path

import numpy as np
import pytest

from pipeline.degrade.imresize import imresize_uint8
from pipeline.degrade.run import degrade_all
from pipeline.errors import PipelineError
from pipeline.imageio import modcrop, read_image, write_png
from pipeline.params_file import validate

SOURCES = {
    "hr/train": {"a.png": (30, 37), "b.png": (25, 24), "c.png": (41, 33)},
    "hr/val": {"v.png": (27, 29)},
    "benchmarks/Tiny": {"t.png": (24, 31)},
}
PRESETS = {
    "bicubic": {},
    "noisy": {"noise": {"sigma": 10}},
    "real": {
        "blur": {"sigma": 1.2, "kernel_size": 7},
        "noise": {"kind": "poisson", "scale": 0.5},
        "jpeg": {"quality": 60},
    },
}


def _make_data(root: Path) -> Path:
    rng = np.random.default_rng(0)
    for folder, files in SOURCES.items():
        for name, (height, width) in files.items():
            write_png(root / folder / name, rng.integers(0, 256, (height, width, 3), dtype=np.uint8))
    return root


def _params(root: Path, seed: int = 0):
    return validate({"seed": seed, "data_dir": str(root), "degrade": {"scales": [2, 3], "presets": PRESETS}})


def _snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted((root / "lr").rglob("*")) if p.is_file()}


def test_writes_every_preset_scale_and_split_with_a_manifest(tmp_path, caplog):
    root = _make_data(tmp_path)
    params = _params(root)
    with caplog.at_level(logging.INFO, logger="pipeline.degrade.run"):
        summary = degrade_all(params)
    splits = {"train": "hr/train", "val": "hr/val", "Tiny": "benchmarks/Tiny"}
    for preset in PRESETS:
        for scale in (2, 3):
            for split, folder in splits.items():
                for name, (height, width) in SOURCES[folder].items():
                    lr = read_image(root / "lr" / preset / f"x{scale}" / split / name)
                    assert lr.shape == (height // scale, width // scale, 3)
                    if preset == "bicubic":
                        hr = read_image(root / folder / name)
                        assert np.array_equal(lr, imresize_uint8(modcrop(hr, scale), 1 / scale))
    manifest = json.loads((root / "lr" / "manifest.json").read_text())
    assert manifest["params_hash"] == params.digest("degrade", "seed")
    assert manifest["presets"]["noisy"]["x3"]["train"] == {"images": 3, "pixels": 10 * 12 + 8 * 8 + 13 * 11}
    assert manifest["presets"]["real"]["x2"]["Tiny"] == {"images": 1, "pixels": 12 * 15}
    assert summary["presets"] == manifest["presets"] and summary["output"] == str(root / "lr")
    assert sum("degrade " in record.getMessage() for record in caplog.records) == len(PRESETS) * 2
    assert not [p for p in root.iterdir() if p.name.startswith(".lr-")]


def test_rerun_is_byte_identical_and_seed_changes_only_random_presets(tmp_path):
    root = _make_data(tmp_path)
    degrade_all(_params(root))
    first = _snapshot(root)
    degrade_all(_params(root))
    assert _snapshot(root) == first
    degrade_all(_params(root, seed=1))
    reseeded = _snapshot(root)
    assert reseeded.keys() == first.keys()
    changed = {key.split("/")[1] for key in first if key.endswith(".png") and reseeded[key] != first[key]}
    assert changed == {"noisy", "real"}


def test_images_removed_from_the_source_disappear_from_the_output(tmp_path):
    root = _make_data(tmp_path)
    degrade_all(_params(root))
    (root / "hr" / "train" / "b.png").unlink()
    summary = degrade_all(_params(root))
    assert not list((root / "lr").rglob("b.png"))
    assert (root / "lr" / "noisy" / "x2" / "train" / "a.png").is_file()
    assert summary["presets"]["bicubic"]["x2"]["train"]["images"] == 2


def test_empty_split_gives_empty_output_folders(tmp_path):
    root = _make_data(tmp_path)
    (root / "hr" / "val" / "v.png").unlink()
    summary = degrade_all(_params(root))
    assert (root / "lr" / "real" / "x3" / "val").is_dir()
    assert not list((root / "lr" / "real" / "x3" / "val").iterdir())
    assert summary["presets"]["real"]["x3"]["val"] == {"images": 0, "pixels": 0}


def test_missing_hr_folder_says_to_run_prepare(tmp_path):
    with pytest.raises(PipelineError, match="prepare"):
        degrade_all(_params(tmp_path))
