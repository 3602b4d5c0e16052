"""A split's decoded LR/HR pairs in one read-only, memory-mapped file that every training process
on a node shares.

Decoded into each process, DIV2K x2's 800 training pairs hold 8.3 GB and take about a minute to
decode, per trial and per spawned loader worker. Mapped from one file, the pairs are decoded once;
N trials and their workers then share one copy in the page cache (clean file pages, which the
kernel can drop and re-read, unlike each process's own decoded copy) and start by reading a small
index. The arrays are byte-for-byte the ones ``load_pairs`` decodes, so batches do not change.

Layout: ``<data_dir>/store/<degradation>/x<scale>/<split>/<key>/{pairs.u8,index.json}``, where
``pairs.u8`` holds each pair's LR then HR bytes (``H x W x 3`` uint8, HR modcropped, each start
64-byte aligned) and ``index.json`` their names, shapes and offsets. ``key`` is a digest of the
sources (relative paths, sizes and modification times of both images) and the scale, so a changed
image makes a new store. The first process to need a store builds it under an exclusive ``flock``
on ``<split>/.lock`` (the others wait, then map it) into a temporary folder renamed into place, so a
killed build leaves no half store; stores of older keys are then deleted (processes still mapping
them keep their pages). The file is not fsynced: after a power cut, delete ``<data_dir>/store``.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import logging
import mmap
import os
import shutil
import time
import uuid
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.data.paired import ImagePair, check_pair_sizes, load_pair, pair_paths
from pipeline.errors import PipelineError
from pipeline.imageio import image_size

log = logging.getLogger(__name__)

FORMAT = 1
DATA_FILE = "pairs.u8"
INDEX_FILE = "index.json"
ALIGNMENT = 64


class StoredPairs(Sequence[ImagePair]):
    """The pairs of one store as read-only arrays over its mapped file.

    Pickling (a spawned loader worker, a Ray task) sends the folder, not the pixels: the receiver maps
    the same file again.
    """

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        index = _read_index(self.folder)
        if index is None:
            raise PipelineError(f"image store '{self.folder}' is incomplete or damaged; delete it and train again")
        with open(self.folder / DATA_FILE, "rb") as handle:
            mapped = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
        data = np.frombuffer(mapped, dtype=np.uint8)
        self._pairs = [ImagePair(entry["name"], _view(data, entry["lr"]), _view(data, entry["hr"]))
                       for entry in index["pairs"]]

    def __len__(self) -> int:
        return len(self._pairs)

    def __getitem__(self, index):  # type: ignore[override]
        return self._pairs[index]

    def __reduce__(self):
        return StoredPairs, (self.folder,)


def stored_pairs(data_dir: Path, degradation: str, scale: int, split: str, threads: int = 1) -> StoredPairs:
    """``split``'s pairs from the node's image store, first built (decoding on ``threads`` threads)
    when it is missing or stale."""
    data_dir = Path(data_dir)
    sources = pair_paths(data_dir, degradation, scale, split)
    split_folder = data_dir / "store" / degradation / f"x{scale}" / split
    folder = split_folder / source_key(sources, scale, data_dir)
    if _read_index(folder) is None:
        with _store_errors(split_folder), _exclusive(split_folder / ".lock"):
            if _read_index(folder) is None:
                build_store(sources, scale, folder, threads)
                _remove_other_stores(split_folder, keep=folder)
    return StoredPairs(folder)


def source_key(sources: list[tuple[Path, Path]], scale: int, data_dir: Path) -> str:
    """16 hex of sha256 over the format, the scale and each image's path (relative to ``data_dir``),
    size and modification time."""
    described: list[Any] = [FORMAT, scale]
    for hr_path, lr_path in sources:
        for path in (hr_path, lr_path):
            stat = path.stat()
            described.append([path.relative_to(data_dir).as_posix(), stat.st_size, stat.st_mtime_ns])
    return hashlib.sha256(json.dumps(described).encode()).hexdigest()[:16]


def build_store(sources: list[tuple[Path, Path]], scale: int, folder: Path, threads: int = 1) -> None:
    """Decode every pair into ``folder`` (written beside it, then renamed): sizes are read from the
    headers and checked first, the space is reserved, then pairs are decoded on ``threads`` threads."""
    started = time.perf_counter()
    entries, offset = [], 0
    for hr_path, lr_path in sources:
        hr_height, hr_width = image_size(hr_path)
        hr_shape = (hr_height - hr_height % scale, hr_width - hr_width % scale, 3)
        lr_shape = (*image_size(lr_path), 3)
        check_pair_sizes(hr_path, lr_path, hr_shape[:2], lr_shape[:2], scale)
        lr_offset = offset
        hr_offset = _aligned(lr_offset + int(np.prod(lr_shape)))
        offset = _aligned(hr_offset + int(np.prod(hr_shape)))
        entries.append({"name": hr_path.stem, "lr": {"offset": lr_offset, "shape": lr_shape},
                        "hr": {"offset": hr_offset, "shape": hr_shape}})
    building = folder.parent / f".building-{uuid.uuid4().hex}"
    building.mkdir(parents=True)
    try:
        with open(building / DATA_FILE, "wb") as handle:
            os.posix_fallocate(handle.fileno(), 0, offset)

            def decode(item: tuple[tuple[Path, Path], dict[str, Any]]) -> None:
                (hr_path, lr_path), entry = item
                pair = load_pair(hr_path, lr_path, scale)
                _write_at(handle.fileno(), pair.lr, entry["lr"]["offset"])
                _write_at(handle.fileno(), pair.hr, entry["hr"]["offset"])

            with ThreadPoolExecutor(threads) as pool:
                list(pool.map(decode, zip(sources, entries)))
        (building / INDEX_FILE).write_text(json.dumps({"format": FORMAT, "scale": scale, "bytes": offset,
                                                       "pairs": entries}))
        shutil.rmtree(folder, ignore_errors=True)  # a damaged store of the same key
        os.replace(building, folder)
    finally:
        shutil.rmtree(building, ignore_errors=True)
    log.info("image store %s: %d pairs, %.2f GiB, built in %.1f s", folder, len(entries), offset / 2**30,
             time.perf_counter() - started)


def _read_index(folder: Path) -> dict[str, Any] | None:
    """The store's index, or None when the store is missing, unfinished or its file has the wrong size."""
    try:
        index = json.loads((folder / INDEX_FILE).read_text())
        size = (folder / DATA_FILE).stat().st_size
    except (OSError, ValueError):
        return None
    if not isinstance(index, dict) or index.get("format") != FORMAT or index.get("bytes") != size:
        return None
    return index


def _view(data: np.ndarray, entry: dict[str, Any]) -> np.ndarray:
    shape = tuple(entry["shape"])
    return data[entry["offset"] : entry["offset"] + int(np.prod(shape))].reshape(shape)


def _write_at(fd: int, array: np.ndarray, offset: int) -> None:
    """Write a C-contiguous array's bytes at ``offset`` (``pwrite`` leaves the GIL and the file position alone)."""
    view = memoryview(array).cast("B")
    while view:
        written = os.pwrite(fd, view, offset)
        view, offset = view[written:], offset + written


def _aligned(offset: int) -> int:
    return -(-offset // ALIGNMENT) * ALIGNMENT


def _remove_other_stores(split_folder: Path, keep: Path) -> None:
    """Delete the split's stores of other keys and any unfinished build (only the lock holder builds)."""
    for folder in split_folder.iterdir():
        if folder.is_dir() and folder != keep:
            shutil.rmtree(folder, ignore_errors=True)


@contextlib.contextmanager
def _exclusive(lock_path: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``lock_path``, waiting for its holder; the kernel frees it when a holder dies."""
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextlib.contextmanager
def _store_errors(split_folder: Path) -> Iterator[None]:
    """A full disk or an unwritable data folder while building, as one sentence naming both ways out."""
    try:
        yield
    except OSError as exc:
        problem = "there is no space left" if exc.errno in (errno.ENOSPC, errno.EDQUOT) else f"it failed ({exc})"
        raise PipelineError(f"could not build the image store in '{split_folder}': {problem}; free space there "
                            "or set train.image_store: memory to decode the images into each process") from None
