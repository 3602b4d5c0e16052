"""The degrade stage: every HR image under every preset and scale, into a fresh ``data/lr``.

Reads ``<data>/hr/{train,val}`` and ``<data>/benchmarks/<Name>`` (written by prepare) and writes
``<data>/lr/<preset>/x<s>/<split>/<same name>`` plus ``<data>/lr/manifest.json``. The new tree is
built beside the old one and swapped in at the end, so files of images that no longer exist do
not survive a re-run. Each image's randomness is seeded from (seed, preset, scale, split, name).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from pipeline.config import Params
from pipeline.degrade.presets import degrade, image_generator
from pipeline.errors import PipelineError
from pipeline.imageio import list_images, read_image, write_png

log = logging.getLogger(__name__)

TRAIN_VAL_SPLITS = ("train", "val")


def source_folders(data_dir: Path) -> dict[str, Path]:
    """Split name -> HR folder: ``train`` and ``val`` under ``hr/``, then each benchmark folder by name."""
    hr_dir = data_dir / "hr"
    folders = {split: hr_dir / split for split in TRAIN_VAL_SPLITS}
    for split, folder in folders.items():
        if not folder.is_dir():
            raise PipelineError(
                f"HR folder '{folder}' does not exist; run the prepare stage first "
                "(`dvc repro prepare` or `python -m pipeline prepare`)"
            )
    benchmarks_dir = data_dir / "benchmarks"
    if benchmarks_dir.is_dir():
        folders.update({path.name: path for path in sorted(benchmarks_dir.iterdir()) if path.is_dir()})
    return folders


def _degrade_split(params: Params, split: str, folder: Path, out_root: Path) -> dict[str, dict[str, dict[str, int]]]:
    """Degrade every image of one split; returns {preset: {"x<s>": {"images", "pixels"}}}.

    Every output folder is created, so an empty split reads as empty rather than missing.
    """
    counts = {
        name: {f"x{scale}": {"images": 0, "pixels": 0} for scale in params.degrade.scales}
        for name in params.degrade.presets
    }
    for name in params.degrade.presets:
        for scale in params.degrade.scales:
            (out_root / name / f"x{scale}" / split).mkdir(parents=True)
    for path in list_images(folder):
        relative = path.relative_to(folder)
        hr = read_image(path)
        for name, preset in params.degrade.presets.items():
            for scale in params.degrade.scales:
                rng = image_generator(params.seed, f"{name}/x{scale}/{split}/{relative.as_posix()}")
                try:
                    lr = degrade(hr, preset, scale, rng)
                except PipelineError as exc:
                    raise PipelineError(f"'{path}': {exc}") from None
                write_png(out_root / name / f"x{scale}" / split / relative, lr)
                entry = counts[name][f"x{scale}"]
                entry["images"] += 1
                entry["pixels"] += lr.shape[0] * lr.shape[1]
    return counts


def _replace_tree(new: Path, target: Path) -> None:
    """Put ``new`` at ``target``, removing whatever was there."""
    if target.exists():
        old = Path(tempfile.mkdtemp(dir=target.parent, prefix=".lr-old-"))
        os.replace(target, old / target.name)
        os.replace(new, target)
        shutil.rmtree(old)
    else:
        os.replace(new, target)


def degrade_all(params: Params) -> dict[str, Any]:
    """Write every LR image and the manifest; returns the manifest plus the output folder.

    Manifest: ``{"params_hash": params.digest("degrade", "seed"), "scales": [...],
    "presets": {preset: {"x<s>": {split: {"images": n, "pixels": total LR pixels}}}}}``.
    """
    data_dir = Path(params.data_dir)
    folders = source_folders(data_dir)
    target = data_dir / "lr"
    staging = Path(tempfile.mkdtemp(dir=data_dir, prefix=".lr-new-"))
    try:
        presets: dict[str, dict[str, dict[str, dict[str, int]]]] = {
            name: {f"x{scale}": {} for scale in params.degrade.scales} for name in params.degrade.presets
        }
        for split, folder in folders.items():
            for name, by_scale in _degrade_split(params, split, folder, staging).items():
                for scale_key, entry in by_scale.items():
                    presets[name][scale_key][split] = entry
        manifest = {
            "params_hash": params.digest("degrade", "seed"),
            "scales": list(params.degrade.scales),
            "presets": presets,
        }
        (staging / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
        _replace_tree(staging, target)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    for name, by_scale in presets.items():
        for scale_key, splits in by_scale.items():
            images = sum(entry["images"] for entry in splits.values())
            megapixels = sum(entry["pixels"] for entry in splits.values()) / 1e6
            per_split = ", ".join(f"{split} {entry['images']}" for split, entry in splits.items())
            log.info(
                "degrade %s %s: %d images (%s), %.2f LR megapixels", name, scale_key, images, per_split, megapixels
            )
    return {"output": str(target), **manifest}
