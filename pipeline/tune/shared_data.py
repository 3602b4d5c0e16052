"""The training data of a sweep whose storage is an object store, for nodes that share no disk.

The driver publishes the images its trials read (HR and LR of ``train``, ``val`` and each
``train.val_benchmarks`` entry of every objective, and the prepare/degrade manifests) to
``<sweep.storage_path>/data/<key>/``, once per key: ``key`` is 16 hex of sha256 over each file's
path (relative to ``data_dir``), size and modification time, so changed data is published again and
unchanged data never. ``published.json`` (the files and their sizes) is written last and marks a
complete copy. On each node the first trial downloads it into ``<tmp>/srloss-data/<key>/`` under an
exclusive ``flock`` (the node's other trials wait, then use it), checks every size, and renames it
into place; that folder is the trial's ``data_dir``, whose image store (``pipeline.data.image_store``)
is then built once per node as usual. Other keys' copies on the node are deleted then.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterable
from pathlib import Path

from pipeline.config import TrainConfig
from pipeline.data.paired import TRAIN_VAL_SPLITS, hr_folder, lr_folder, pair_paths
from pipeline.errors import PipelineError
from pipeline.tune.storage import Storage

log = logging.getLogger(__name__)

MARKER = "published.json"
MANIFESTS = ("hr/manifest.json", "lr/manifest.json")
NODE_FOLDER = "srloss-data"


def training_folders(data_dir: Path, trains: Iterable[TrainConfig]) -> list[str]:
    """The folders (relative to ``data_dir``) that trials with these train configs read; each is
    checked to exist (``pair_paths`` names the stage to run when one is missing)."""
    folders = set()
    for train in trains:
        for split in (*TRAIN_VAL_SPLITS, *train.val_benchmarks):
            pair_paths(data_dir, train.degradation, train.scale, split)
            folders.add(hr_folder(Path(), split).as_posix())
            folders.add(lr_folder(Path(), train.degradation, train.scale, split).as_posix())
    return sorted(folders)


def publish_data(data_dir: Path, folders: list[str], storage: Storage) -> Storage:
    """Publish ``folders`` of ``data_dir`` under ``storage`` (the sweep storage's ``data`` folder)
    unless that key is there already; returns the published copy's folder ``<storage>/<key>``."""
    data_dir = Path(data_dir)
    files = {path.relative_to(data_dir).as_posix(): path.stat() for folder in folders
             for path in sorted((data_dir / folder).rglob("*")) if path.is_file()}
    files.update({name: (data_dir / name).stat() for name in MANIFESTS if (data_dir / name).is_file()})
    described = sorted([name, stat.st_size, stat.st_mtime_ns] for name, stat in files.items())
    key = hashlib.sha256(json.dumps(described).encode()).hexdigest()[:16]
    published = storage.child(key)
    if published.exists(MARKER):
        log.info("training data already published to %s", published.location)
        return published
    started = time.perf_counter()
    for folder in folders:
        published.upload(data_dir / folder, folder)
    for name in MANIFESTS:
        if name in files:
            published.write_bytes(name, (data_dir / name).read_bytes())
    sizes = {name: stat.st_size for name, stat in files.items()}
    published.write_bytes(MARKER, json.dumps({"files": sizes}, indent=1).encode())
    log.info("published %d training files (%.1f MiB) to %s in %.1f s", len(sizes), sum(sizes.values()) / 2**20,
             published.location, time.perf_counter() - started)
    return published


def node_data_dir(published: Storage) -> Path:
    """This node's copy of a published data folder (downloaded by the first trial that asks)."""
    root = Path(tempfile.gettempdir()) / NODE_FOLDER
    key = published.location.rsplit("/", 1)[-1]
    folder = root / key
    if (folder / MARKER).is_file():
        return folder
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".lock", "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (folder / MARKER).is_file():
            _download(published, folder)
            for other in root.iterdir():
                if other.is_dir() and other != folder:
                    shutil.rmtree(other, ignore_errors=True)
    return folder


def _download(published: Storage, folder: Path) -> None:
    """Download ``published`` beside ``folder``, check every file's size, rename it into place."""
    if not published.exists(MARKER):
        raise PipelineError(f"the sweep's training data is missing from '{published.location}' (was the storage "
                            "cleared during the sweep?); run the sweep again to publish it")
    started = time.perf_counter()
    sizes = json.loads(published.read_bytes(MARKER))["files"]
    building = folder.parent / f".building-{uuid.uuid4().hex}"
    try:
        published.download("", building)
        wrong = [name for name, size in sizes.items()
                 if not (building / name).is_file() or (building / name).stat().st_size != size]
        if wrong:
            raise PipelineError(f"the training data downloaded from '{published.location}' is incomplete ({wrong[0]} "
                                "and others); check the storage and run the sweep again")
        shutil.rmtree(folder, ignore_errors=True)
        building.rename(folder)
    finally:
        shutil.rmtree(building, ignore_errors=True)
    log.info("downloaded the training data %s to %s in %.1f s", published.location, folder,
             time.perf_counter() - started)
