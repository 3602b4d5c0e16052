"""The node's memory-mapped image store: the same bytes and batches as decoding, built once, safe to
share, rebuilt when its sources change, and never left half-built."""

from __future__ import annotations

import errno
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import pipeline.data.image_store as image_store
CODE = Path(__file__).resolve().parents[2]
from pipeline.data.image_store import StoredPairs, stored_pairs
from pipeline.data.paired import PairedPatchDataset, load_pairs
from pipeline.errors import PipelineError
from pipeline.imageio import write_png


def write_split(data_dir: Path, split: str = "train", count: int = 5, seed: int = 0) -> None:
    """``count`` pairs of odd-sized images (the HR is modcropped at x2), named out of sort order by size."""
    rng = np.random.default_rng(seed)
    for index in range(count):
        height, width = 41 + 6 * index, 57 - 4 * index
        write_png(data_dir / "hr" / split / f"img{index}.png", rng.integers(0, 256, (height, width, 3), np.uint8))
        lr = rng.integers(0, 256, (height // 2, width // 2, 3), np.uint8)
        write_png(data_dir / "lr" / "bicubic" / "x2" / split / f"img{index}.png", lr)


def store_folders(data_dir: Path, split: str = "train") -> list[str]:
    """Every entry of the split's store folder but the lock."""
    return sorted(p.name for p in (data_dir / "store" / "bicubic" / "x2" / split).iterdir() if p.name != ".lock")


def test_stored_pairs_are_the_decoded_pairs_byte_for_byte_and_read_only(tmp_path):
    write_split(tmp_path)
    decoded = load_pairs(tmp_path, "bicubic", 2, "train")
    stored = stored_pairs(tmp_path, "bicubic", 2, "train")
    assert [p.name for p in stored] == [p.name for p in decoded]
    for mapped, pair in zip(stored, decoded):
        assert mapped.lr.shape == pair.lr.shape and mapped.hr.shape == pair.hr.shape
        assert mapped.lr.tobytes() == pair.lr.tobytes() and mapped.hr.tobytes() == pair.hr.tobytes()
        assert not mapped.hr.flags.writeable
    (folder,) = store_folders(tmp_path)
    assert len(folder) == 16


def test_batches_from_the_store_equal_batches_from_decoded_images(tmp_path):
    write_split(tmp_path)
    from_memory = PairedPatchDataset(load_pairs(tmp_path, "bicubic", 2, "train"), 16, 2, 8, seed=3)
    from_store = PairedPatchDataset(stored_pairs(tmp_path, "bicubic", 2, "train"), 16, 2, 8, seed=3)
    for iteration in range(40):
        a, b = from_memory[iteration], from_store[iteration]
        assert a["lr"].numpy().tobytes() == b["lr"].numpy().tobytes()
        assert a["hr"].numpy().tobytes() == b["hr"].numpy().tobytes()


def test_pickling_sends_the_folder_not_the_pixels(tmp_path):
    write_split(tmp_path)
    stored = stored_pairs(tmp_path, "bicubic", 2, "train")
    payload = pickle.dumps(stored)
    assert len(payload) < 1000 < sum(p.hr.nbytes for p in stored)
    copy = pickle.loads(payload)
    assert isinstance(copy, StoredPairs)
    assert [p.hr.tobytes() for p in copy] == [p.hr.tobytes() for p in stored]


def test_a_changed_image_makes_a_new_store_and_the_old_one_goes(tmp_path):
    write_split(tmp_path)
    stored_pairs(tmp_path, "bicubic", 2, "train")
    (before,) = store_folders(tmp_path)
    again = stored_pairs(tmp_path, "bicubic", 2, "train")
    assert store_folders(tmp_path) == [before] and again.folder.name == before  # reused, not rebuilt
    write_split(tmp_path, seed=1)
    rebuilt = stored_pairs(tmp_path, "bicubic", 2, "train")
    (after,) = store_folders(tmp_path)
    assert after != before
    assert [p.hr.tobytes() for p in rebuilt] == [p.hr.tobytes() for p in load_pairs(tmp_path, "bicubic", 2, "train")]


def test_a_truncated_store_is_rebuilt(tmp_path):
    write_split(tmp_path)
    folder = stored_pairs(tmp_path, "bicubic", 2, "train").folder
    with open(folder / "pairs.u8", "r+b") as handle:
        handle.truncate(100)
    rebuilt = stored_pairs(tmp_path, "bicubic", 2, "train")
    assert [p.lr.tobytes() for p in rebuilt] == [p.lr.tobytes() for p in load_pairs(tmp_path, "bicubic", 2, "train")]


def test_a_build_that_fails_midway_leaves_nothing_and_the_next_one_succeeds(tmp_path, monkeypatch):
    write_split(tmp_path)
    real_load_pair, calls = image_store.load_pair, []

    def failing(*args):
        calls.append(args)
        if len(calls) == 3:
            raise KeyboardInterrupt  # as a killed build: not an error the store turns into a sentence
        return real_load_pair(*args)

    monkeypatch.setattr(image_store, "load_pair", failing)
    with pytest.raises(KeyboardInterrupt):
        stored_pairs(tmp_path, "bicubic", 2, "train")
    assert store_folders(tmp_path) == []
    monkeypatch.setattr(image_store, "load_pair", real_load_pair)
    assert len(stored_pairs(tmp_path, "bicubic", 2, "train")) == 5


def test_a_full_disk_is_one_sentence_naming_both_ways_out_and_leaves_nothing(tmp_path, monkeypatch):
    write_split(tmp_path)

    def no_space(*args):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(image_store.os, "posix_fallocate", no_space)
    with pytest.raises(PipelineError, match=r"no space left; free space there or set train.image_store: memory"):
        stored_pairs(tmp_path, "bicubic", 2, "train")
    assert store_folders(tmp_path) == []


def test_mismatched_sizes_are_refused_before_anything_is_decoded(tmp_path, monkeypatch):
    write_split(tmp_path)
    write_png(tmp_path / "lr" / "bicubic" / "x2" / "train" / "img2.png", np.zeros((5, 5, 3), np.uint8))
    monkeypatch.setattr(image_store, "load_pair", lambda *args: pytest.fail("decoded before the sizes were checked"))
    with pytest.raises(PipelineError, match=r"img2.png' is 5x5 but HR .* re-run `dvc repro degrade`"):
        stored_pairs(tmp_path, "bicubic", 2, "train")
    assert store_folders(tmp_path) == []


OPEN_AND_SUM = """
import sys
from pathlib import Path
from pipeline.data.image_store import stored_pairs
stored = stored_pairs(Path(sys.argv[1]), "bicubic", 2, "train")
print(sum(int(p.hr.sum()) for p in stored), (stored.folder / "pairs.u8").stat().st_ino)
"""


def test_processes_starting_together_build_one_store_and_see_the_same_pixels(tmp_path):
    write_split(tmp_path, count=12)
    env = {**os.environ, "PYTHONPATH": str(CODE)}
    processes = [subprocess.Popen([sys.executable, "-c", OPEN_AND_SUM, str(tmp_path)], stdout=subprocess.PIPE,
                                  env=env, text=True) for _ in range(3)]
    sums, files = zip(*(process.communicate(timeout=120)[0].split() for process in processes))
    expected = sum(int(p.hr.sum()) for p in load_pairs(tmp_path, "bicubic", 2, "train"))
    assert [int(total) for total in sums] == [expected] * 3
    assert len(set(files)) == 1 and len(store_folders(tmp_path)) == 1  # built once, no unfinished build left
