"""Paired LR/HR images on disk and the random patch batches training draws from them.

Layout (written by the prepare and degrade stages, same file names on both sides):
HR ``<data>/hr/{train,val}/<name>.png`` or ``<data>/benchmarks/<Bench>/<name>.png``;
LR ``<data>/lr/<preset>/x<scale>/<split>/<name>.png``. HR is modcropped to ``LR * scale``.

Batch ``i`` depends only on ``(seed, i)``: crops and augmentations are drawn from a generator
seeded with both, so a resumed run sees exactly the batches an uninterrupted one would, whatever
the number of loader workers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import albumentations as A
import numpy as np
import torch
from torch.utils.data import Dataset

from pipeline.errors import PipelineError
from pipeline.imageio import list_images, modcrop, read_image

TRAIN_VAL_SPLITS = ("train", "val")


@dataclass(frozen=True)
class ImagePair:
    """One LR image (``h x w x 3`` uint8) and its HR image modcropped to ``(h*s) x (w*s) x 3``."""

    name: str
    lr: np.ndarray
    hr: np.ndarray


def hr_folder(data_dir: Path, split: str) -> Path:
    """``train``/``val`` live under ``hr/``; any other split is a benchmark under ``benchmarks/``."""
    return data_dir / "hr" / split if split in TRAIN_VAL_SPLITS else data_dir / "benchmarks" / split


def lr_folder(data_dir: Path, degradation: str, scale: int, split: str) -> Path:
    return data_dir / "lr" / degradation / f"x{scale}" / split


def pair_paths(data_dir: Path, degradation: str, scale: int, split: str) -> list[tuple[Path, Path]]:
    """``(HR path, LR path)`` of every image of ``split``, sorted; the folders are checked, not the images."""
    hr_dir = hr_folder(Path(data_dir), split)
    lr_dir = lr_folder(Path(data_dir), degradation, scale, split)
    if not hr_dir.is_dir():
        if split in TRAIN_VAL_SPLITS:
            raise PipelineError(f"HR folder '{hr_dir}' does not exist; run `dvc repro prepare` "
                                "(or `python -m pipeline prepare`) first")
        raise PipelineError(f"benchmark '{split}' has no HR folder '{hr_dir}'; add it to prepare.benchmarks "
                            "and re-run prepare, or remove it from train.val_benchmarks")
    if not lr_dir.is_dir():
        raise PipelineError(f"LR folder '{lr_dir}' does not exist; run `dvc repro degrade` (or `python -m "
                            f"pipeline degrade`) with preset '{degradation}' and scale {scale} in params.degrade")
    hr_paths = list_images(hr_dir)
    if not hr_paths:
        raise PipelineError(f"HR folder '{hr_dir}' holds no images; re-run `dvc repro prepare`")
    pairs = [(path, lr_dir / path.relative_to(hr_dir)) for path in hr_paths]
    for hr_path, lr_path in pairs:
        if not lr_path.is_file():
            raise PipelineError(f"LR image '{lr_path}' for HR '{hr_path}' is missing; re-run `dvc repro degrade`")
    return pairs


def load_pairs(data_dir: Path, degradation: str, scale: int, split: str) -> list[ImagePair]:
    """Read every HR image of ``split`` with its LR counterpart into memory, checking names and sizes."""
    return [load_pair(hr_path, lr_path, scale) for hr_path, lr_path in pair_paths(data_dir, degradation, scale, split)]


def load_pair(hr_path: Path, lr_path: Path, scale: int) -> ImagePair:
    """One pair decoded: the HR image modcropped, its LR image checked to be ``1/scale`` of it."""
    hr = modcrop(read_image(hr_path), scale)
    lr = read_image(lr_path)
    check_pair_sizes(hr_path, lr_path, hr.shape[:2], lr.shape[:2], scale)
    return ImagePair(name=hr_path.stem, lr=lr, hr=np.ascontiguousarray(hr))


def check_pair_sizes(hr_path: Path, lr_path: Path, hr_size: tuple[int, int], lr_size: tuple[int, int],
                     scale: int) -> None:
    """Raise unless ``lr_size * scale == hr_size`` (``(height, width)``, HR after modcrop)."""
    if (lr_size[0] * scale, lr_size[1] * scale) != tuple(hr_size):
        raise PipelineError(
            f"LR image '{lr_path}' is {lr_size[1]}x{lr_size[0]} but HR '{hr_path}' modcropped at x{scale} is "
            f"{hr_size[1]}x{hr_size[0]}; re-run `dvc repro degrade` so the LR images match the HR ones"
        )


def dihedral_augmentation() -> A.Compose:
    """Random horizontal flip, vertical flip and 90-degree rotation, applied identically to the
    HR image (``image``) and its LR crop (``lr``); sizes differ, so the shape check is off.

    Seed each transform on its own: ``Compose.set_random_seed`` gives all of them the same seed,
    which makes the two flips decide alike (only rotations would ever come out).
    """
    return A.Compose(
        [A.HorizontalFlip(p=0.5), A.VerticalFlip(p=0.5), A.RandomRotate90(p=0.5)],
        additional_targets={"lr": "image"},
        is_check_shapes=False,
    )


class PairedPatchDataset(Dataset):
    """Item ``i`` is training batch ``i``: ``{"lr": uint8 [B,3,p/s,p/s], "hr": uint8 [B,3,p,p]}``.

    ``pairs`` is any sequence of ``ImagePair``: decoded in memory (``load_pairs``) or mapped from the
    node's image store (``pipeline.data.image_store``); the batches are the same bytes either way.

    Each patch comes from an image drawn uniformly, at a uniform LR-grid position (so HR and LR
    stay aligned), then flipped/rotated with albumentations. Use it with
    ``DataLoader(dataset, batch_size=None, sampler=range(start, iterations))``.
    """

    def __init__(self, pairs: Sequence[ImagePair], patch_size: int, scale: int, batch_size: int, seed: int):
        if patch_size % scale:
            raise PipelineError(f"train.patch_size {patch_size} is not a multiple of train.scale {scale}; "
                                f"use e.g. {patch_size - patch_size % scale or scale}")
        if not pairs:
            raise PipelineError("the training split holds no images; re-run `dvc repro prepare`")
        smallest = min(pairs, key=lambda pair: min(pair.hr.shape[:2]))
        height, width = smallest.hr.shape[:2]
        if min(height, width) < patch_size:
            raise PipelineError(
                f"train.patch_size {patch_size} is larger than training image '{smallest.name}' "
                f"({width}x{height} after modcrop); lower train.patch_size to at most {min(height, width)}"
            )
        self.pairs = pairs
        self.patch_size = patch_size
        self.scale = scale
        self.batch_size = batch_size
        self.seed = seed % 2**64
        self.augmentation = dihedral_augmentation()

    def __getitem__(self, iteration: int) -> dict[str, torch.Tensor]:
        rng = np.random.default_rng([self.seed, iteration])
        for transform in self.augmentation.transforms:
            transform.set_random_seed(int(rng.integers(2**32)))
        lr_side = self.patch_size // self.scale
        lr_patches, hr_patches = [], []
        for index in rng.integers(len(self.pairs), size=self.batch_size):
            pair = self.pairs[index]
            y = int(rng.integers(pair.lr.shape[0] - lr_side + 1))
            x = int(rng.integers(pair.lr.shape[1] - lr_side + 1))
            lr = pair.lr[y : y + lr_side, x : x + lr_side]
            hr = pair.hr[y * self.scale : (y + lr_side) * self.scale, x * self.scale : (x + lr_side) * self.scale]
            augmented = self.augmentation(image=hr, lr=lr)
            lr_patches.append(augmented["lr"])
            hr_patches.append(augmented["image"])
        return {"lr": _to_nchw(lr_patches), "hr": _to_nchw(hr_patches)}


def _to_nchw(patches: list[np.ndarray]) -> torch.Tensor:
    return torch.from_numpy(np.stack(patches)).permute(0, 3, 1, 2).contiguous()
