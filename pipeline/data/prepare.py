"""The ``prepare`` stage: HR train/val images and benchmark sets as lossless PNGs.

Writes ``<data_dir>/hr/{train,val}/*.png``, ``<data_dir>/hr/manifest.json`` and
``<data_dir>/benchmarks/<Name>/*.png``. The split is deterministic: the usable images sorted
by name, ``val_count`` of them picked by a permutation seeded with ``params.seed``. Everything
is built in a staging folder inside ``data_dir`` and renamed into place at the end, so a
failed run leaves the previous data as it was; equal inputs give byte-identical files.
``min_side`` applies to the HR source only: benchmark sets are kept whole so that scores
stay comparable with published ones.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
from tqdm import tqdm

from pipeline.config import Params
from pipeline.config_data import PrepareConfig, SourceConfig
from pipeline.data.builtin import builtin_images
from pipeline.data.download import SourceUnavailable, fetch_archive, file_sha256
from pipeline.data.folder import folder_images
from pipeline.data.presets import preset_source
from pipeline.errors import PipelineError
from pipeline.redact import redact_data
from pipeline.imageio import UnreadableImage, read_image, write_png

log = logging.getLogger(__name__)

STAGING_PREFIX = ".prepare-"
OUTPUTS = ("hr", "benchmarks")


@dataclass
class Converted:
    """What one source gave: PNG name -> sha256 of the written file, and the files skipped."""

    files: dict[str, str] = field(default_factory=dict)
    unreadable: list[str] = field(default_factory=list)
    too_small: list[str] = field(default_factory=list)


def prepare_all(params: Params, *, progress: bool = True) -> dict[str, Any]:
    """Write the HR split and the benchmark sets under ``params.data_dir``; return a summary."""
    data_dir = Path(params.data_dir).expanduser()
    data_dir.mkdir(parents=True, exist_ok=True)
    for stale in data_dir.glob(STAGING_PREFIX + "*"):
        shutil.rmtree(stale, ignore_errors=True)
    staging = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=data_dir))
    try:
        benchmarks, missing = prepare_benchmarks(params.prepare, staging / "benchmarks", progress)
        manifest = prepare_hr(params, staging / "hr", progress)
        _swap_in(staging, data_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return {
        "train": len(manifest["splits"]["train"]),
        "val": len(manifest["splits"]["val"]),
        "digest": manifest["digest"],
        "skipped_unreadable": len(manifest["skipped"]["unreadable"])
        + sum(len(done.unreadable) for done in benchmarks.values()),
        "skipped_small": len(manifest["skipped"]["too_small"]),
        "benchmarks": {name: len(done.files) for name, done in benchmarks.items()},
        "benchmarks_skipped": missing,
        "manifest": str(data_dir / "hr" / "manifest.json"),
    }


def prepare_hr(params: Params, out: Path, progress: bool = True) -> dict[str, Any]:
    """Convert the HR source into ``out/{train,val}`` and write ``out/manifest.json``; return the manifest."""
    prepare = params.prepare
    images = source_images(prepare.source, "prepare.source", prepare.cache_dir, progress)
    pool = out / "all"
    converted = convert_images(images, pool, "prepare.source", prepare.min_side, progress)
    names = sorted(converted.files)
    if len(names) <= prepare.val_count:
        raise PipelineError(f"prepare.source gives {len(names)} usable image(s), which leaves none for training "
                            f"after val_count={prepare.val_count}; lower prepare.val_count or add images")
    order = np.random.default_rng(params.seed).permutation(len(names))
    held_out = {names[i] for i in order[: prepare.val_count]}
    splits: dict[str, dict[str, str]] = {"train": {}, "val": {}}
    for split in splits:
        (out / split).mkdir()
    for name in names:
        split = "val" if name in held_out else "train"
        os.replace(pool / name, out / split / name)
        splits[split][name] = converted.files[name]
    pool.rmdir()
    manifest = {
        "digest": hashlib.sha256(json.dumps(splits, sort_keys=True).encode()).hexdigest(),
        "source": describe_source(prepare.source),
        "seed": params.seed,
        "val_count": prepare.val_count,
        "min_side": prepare.min_side,
        "splits": splits,
        "skipped": {"unreadable": converted.unreadable, "too_small": converted.too_small},
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return manifest


def prepare_benchmarks(prepare: PrepareConfig, out: Path,
                       progress: bool = True) -> tuple[dict[str, Converted], dict[str, str]]:
    """Convert each benchmark into ``out/<Name>``; return what was written and the optional sets skipped.

    Optional sets that cannot be had are skipped with one warning per cause: presets that share an
    archive (Set5, Set14, B100, Urban100) are tried once and named together.
    """
    out.mkdir(parents=True, exist_ok=True)
    done: dict[str, Converted] = {}
    missing: dict[str, str] = {}
    failed_urls: dict[str, str] = {}
    for name, source in sorted(prepare.benchmarks.items()):
        label = f"prepare.benchmarks.{name}"
        url = _archive_url(source)
        if url in failed_urls:
            missing[name] = failed_urls[url]
            continue
        try:
            images = source_images(source, label, prepare.cache_dir, progress)
        except SourceUnavailable as exc:
            if not source.optional:
                raise
            missing[name] = str(exc)
            if url is not None:
                failed_urls[url] = str(exc)
            continue
        done[name] = convert_images(images, out / name, label, None, progress)
    for reason in dict.fromkeys(missing.values()):
        names = [name for name, why in missing.items() if why == reason]
        log.warning("optional benchmark%s %s skipped (used when available): %s", "s" * (len(names) > 1),
                    ", ".join(names), reason)
    return done, missing


def _archive_url(source: SourceConfig) -> str | None:
    """The archive URL a ``url`` or ``preset`` source downloads; None for local sources."""
    if source.kind == "preset":
        return preset_source(source).url
    return source.url if source.kind == "url" else None


def source_images(source: SourceConfig, label: str, cache_dir: Path, progress: bool = True) -> dict[str, Path]:
    """Output PNG name -> input file for a source; ``SourceUnavailable`` when its folder or URL is missing."""
    if source.kind == "builtin":
        return builtin_images(source.names, source.collection)
    if source.kind == "folder":
        folder = Path(source.path).expanduser()
        if not folder.is_dir():
            advice = "" if source.optional else f" or set {label}.optional=true"
            raise SourceUnavailable(f"{label}: folder '{folder}' does not exist; fix the path{advice}")
        images = folder_images(folder)
    else:
        resolved = preset_source(source) if source.kind == "preset" else source
        root = fetch_archive(resolved.url, cache_dir, resolved.sha256, progress=progress)
        images = folder_images(_archive_folder(root, resolved.subdir, label))
    return _pick(images, source.names, label)


def convert_images(images: dict[str, Path], out: Path, label: str, min_side: int | None,
                   progress: bool = True) -> Converted:
    """Read each image and write it as ``out/<name>`` (PNG); unreadable or small ones are skipped and counted."""
    out.mkdir(parents=True, exist_ok=True)
    result = Converted()
    for name, path in tqdm(images.items(), desc=label, unit="img", disable=not progress):
        try:
            image = read_image(path)
        except UnreadableImage as exc:
            log.warning("%s: skipped: %s", label, exc)
            result.unreadable.append(str(path))
            continue
        height, width = image.shape[:2]
        if min_side is not None and min(height, width) < min_side:
            log.warning("%s: skipped '%s' (%dx%d): its shorter side is below prepare.min_side=%d",
                        label, path, width, height, min_side)
            result.too_small.append(str(path))
            continue
        write_png(out / name, image)
        result.files[name] = file_sha256(out / name)
    if not result.files:
        raise PipelineError(f"{label} gives no usable image ({len(images)} found, {len(result.unreadable)} unreadable, "
                            f"{len(result.too_small)} below min_side); point it at a folder of HR images")
    return result


def describe_source(source: SourceConfig) -> dict[str, Any]:
    """The source as JSON-ready settings; a preset also names the URL and folder it stands for. URIs are
    redacted (``pipeline.redact``): the manifest is logged to MLflow by every training."""
    description = source.model_dump(mode="json", exclude_none=True)
    if source.kind == "preset":
        resolved = preset_source(source)
        description.update(url=resolved.url, subdir=resolved.subdir)
    return redact_data(description)


def _archive_folder(root: Path, subdir: str | None, label: str) -> Path:
    if not subdir:
        return root
    parts = PurePosixPath(subdir.replace("\\", "/")).parts
    if parts[0] == "/" or ".." in parts:
        raise PipelineError(f"{label}.subdir '{subdir}' must be a relative folder inside the archive, without '..'")
    folder = root.joinpath(*parts)
    if not folder.is_dir():
        top = ", ".join(sorted(p.name for p in root.iterdir() if p.is_dir())) or "none"
        raise PipelineError(f"{label}: the archive has no folder '{subdir}'; set {label}.subdir to a folder "
                            f"inside it (top level: {top})")
    return folder


def _pick(images: dict[str, Path], names: list[str] | None, label: str) -> dict[str, Path]:
    """The images whose name without ``.png`` is in ``names`` (all when None)."""
    if names is None:
        return images
    by_stem = {name.removesuffix(".png"): name for name in images}
    unknown = sorted(set(names) - set(by_stem))
    if unknown:
        raise PipelineError(f"{label}.names: no image called {', '.join(unknown)}; "
                            f"available names start with: {', '.join(sorted(by_stem)[:10])}")
    return {by_stem[stem]: images[by_stem[stem]] for stem in sorted(set(names))}


def _swap_in(staging: Path, data_dir: Path) -> None:
    """Replace ``data_dir/hr`` and ``data_dir/benchmarks`` with the staged folders, by renames."""
    retired = staging / "retired"
    retired.mkdir()
    for name in OUTPUTS:
        current = data_dir / name
        if current.exists() or current.is_symlink():
            os.replace(current, retired / name)
        os.replace(staging / name, current)
