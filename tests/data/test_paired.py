"""The paired patch dataset: pairing on disk, aligned crops, consistent augmentation, determinism."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from pipeline.data.paired import ImagePair, PairedPatchDataset, load_pairs
from pipeline.errors import PipelineError
from pipeline.imageio import write_png


def nearest_pair(name: str, height: int, width: int, scale: int, seed: int) -> ImagePair:
    """An LR image and its nearest-neighbour HR: every aligned crop satisfies HR == repeat(LR)."""
    lr = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    return ImagePair(name, lr, np.repeat(np.repeat(lr, scale, 0), scale, 1))


def upsample_nearest(batch: torch.Tensor, scale: int) -> torch.Tensor:
    return batch.repeat_interleave(scale, dim=2).repeat_interleave(scale, dim=3)


def dihedral_images(image: np.ndarray) -> list[np.ndarray]:
    """The 8 flips/rotations of a square ``H x W x C`` image."""
    rotations = [np.rot90(image, k) for k in range(4)]
    return rotations + [np.fliplr(r) for r in rotations]


def test_load_pairs_modcrops_hr_and_pairs_by_name(tmp_path):
    rng = np.random.default_rng(0)
    hr = rng.integers(0, 256, (33, 41, 3), dtype=np.uint8)
    lr = rng.integers(0, 256, (11, 13, 3), dtype=np.uint8)
    write_png(tmp_path / "hr" / "train" / "a.png", hr)
    write_png(tmp_path / "lr" / "bicubic" / "x3" / "train" / "a.png", lr)
    (pair,) = load_pairs(tmp_path, "bicubic", 3, "train")
    assert pair.name == "a"
    np.testing.assert_array_equal(pair.hr, hr[:33, :39])
    np.testing.assert_array_equal(pair.lr, lr)


def test_benchmark_split_reads_benchmarks_folder(tmp_path):
    write_png(tmp_path / "benchmarks" / "Set5" / "b.png", np.zeros((8, 8, 3), np.uint8))
    write_png(tmp_path / "lr" / "bicubic" / "x2" / "Set5" / "b.png", np.zeros((4, 4, 3), np.uint8))
    assert [p.name for p in load_pairs(tmp_path, "bicubic", 2, "Set5")] == ["b"]


def test_missing_folders_and_files_name_the_fix(tmp_path):
    with pytest.raises(PipelineError, match="prepare"):
        load_pairs(tmp_path, "bicubic", 2, "train")
    with pytest.raises(PipelineError, match="val_benchmarks"):
        load_pairs(tmp_path, "bicubic", 2, "Set5")
    write_png(tmp_path / "hr" / "train" / "a.png", np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(PipelineError, match=r"lr/bicubic/x2/train' does not exist.*degrade"):
        load_pairs(tmp_path, "bicubic", 2, "train")
    (tmp_path / "lr" / "bicubic" / "x2" / "train").mkdir(parents=True)
    with pytest.raises(PipelineError, match="a.png' for HR .* is missing"):
        load_pairs(tmp_path, "bicubic", 2, "train")
    write_png(tmp_path / "lr" / "bicubic" / "x2" / "train" / "a.png", np.zeros((3, 4, 3), np.uint8))
    with pytest.raises(PipelineError, match="is 4x3 but HR .* is 8x8"):
        load_pairs(tmp_path, "bicubic", 2, "train")


def test_patches_stay_aligned_under_augmentation():
    pairs = [nearest_pair("a", 20, 30, 3, seed=1), nearest_pair("b", 17, 16, 3, seed=2)]
    dataset = PairedPatchDataset(pairs, patch_size=24, scale=3, batch_size=16, seed=0)
    for iteration in range(5):
        batch = dataset[iteration]
        assert batch["lr"].shape == (16, 3, 8, 8) and batch["hr"].shape == (16, 3, 24, 24)
        assert batch["lr"].dtype == batch["hr"].dtype == torch.uint8
        torch.testing.assert_close(upsample_nearest(batch["lr"], 3), batch["hr"], rtol=0, atol=0)


def test_augmentation_draws_every_flip_and_rotation():
    pair = nearest_pair("a", 8, 8, 2, seed=3)
    dataset = PairedPatchDataset([pair], patch_size=16, scale=2, batch_size=16, seed=0)
    variants = [v.tobytes() for v in dihedral_images(pair.hr)]
    seen = set()
    for iteration in range(4):
        for patch in dataset[iteration]["hr"].permute(0, 2, 3, 1).numpy():
            seen.add(variants.index(np.ascontiguousarray(patch).tobytes()))
    assert seen == set(range(8))


def test_batch_depends_only_on_seed_and_iteration():
    pairs = [nearest_pair("a", 24, 24, 2, seed=4), nearest_pair("b", 30, 20, 2, seed=5)]
    first = PairedPatchDataset(pairs, 16, 2, 4, seed=7)
    second = PairedPatchDataset(pairs, 16, 2, 4, seed=7)
    forward = [first[i]["hr"] for i in range(4)]
    backward = [second[i]["hr"] for i in reversed(range(4))][::-1]
    for a, b in zip(forward, backward):
        assert torch.equal(a, b)
    assert not torch.equal(forward[0], forward[1])
    assert not torch.equal(forward[0], PairedPatchDataset(pairs, 16, 2, 4, seed=8)[0]["hr"])


def test_loader_workers_give_the_same_batches():
    pairs = [nearest_pair("a", 24, 24, 2, seed=6)]
    dataset = PairedPatchDataset(pairs, 16, 2, 4, seed=0)
    loader = DataLoader(dataset, batch_size=None, sampler=range(3, 7), num_workers=2)
    for iteration, batch in zip(range(3, 7), loader):
        assert torch.equal(batch["lr"], dataset[iteration]["lr"])


def test_bad_patch_sizes_are_clear_errors():
    pairs = [nearest_pair("small", 10, 12, 2, seed=7)]
    with pytest.raises(PipelineError, match=r"larger than training image 'small' \(24x20 after modcrop\)"):
        PairedPatchDataset(pairs, patch_size=22, scale=2, batch_size=1, seed=0)
    with pytest.raises(PipelineError, match="not a multiple of train.scale 2"):
        PairedPatchDataset(pairs, patch_size=15, scale=2, batch_size=1, seed=0)
