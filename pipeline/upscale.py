"""The ``upscale`` command: super-resolve image files and folders with a trained model into PNGs."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from pipeline.errors import PipelineError
from pipeline.imageio import Decoded, UnreadableImage, decode_image, list_images, write_png
from pipeline.inference import SuperResolver, load_super_resolver, tile_count, upscale_image
from pipeline.self_ensemble import SelfEnsemble
from pipeline.train.cpus import use_available_cpus
from pipeline.train.device import flush_subnormals, keep_freed_cpu_memory, resolve_device

log = logging.getLogger(__name__)


def upscale_paths(model: str, scale: int | None, inputs: list[Path], out_dir: Path, tile: int = 256,
                  overlap: int = 16, device: str | torch.device = "auto", architecture: str | None = None,
                  tracking_uri: str | None = None, progress: bool = True, self_ensemble: bool = False) -> list[Path]:
    """Upscale every image in ``inputs`` (files, or folders searched recursively) into ``out_dir``,
    with progress bars on stderr (images, and the tiles of an image cut into several) unless
    ``progress`` is false; ``self_ensemble`` averages the 8 flips/rotations (``pipeline.self_ensemble``).

    Each result is ``out_dir/<path below its input folder>/<stem>.png``; a result that would replace
    an input is refused before any work. Unreadable images are
    skipped with a warning naming each one; the written paths are returned in input order. Images are
    read upright (EXIF orientation); greyscale ones are written greyscale and alpha is kept (bicubic).
    ``model`` is a checkpoint, a ``models/<objective>`` folder or an MLflow model URI (see
    ``load_super_resolver``); the scale is the model's, and a ``scale`` given must equal it; when
    ``architecture`` is given the model must be that network.
    """
    jobs = _plan_outputs(inputs, Path(out_dir))
    resolver = load_model(model, resolve_device(device) if isinstance(device, str) else device, tracking_uri)
    check_model(resolver, model, scale, architecture)
    if self_ensemble:
        resolver = SelfEnsemble(resolver)
    log.info("upscaling %d images with %s", len(jobs), resolver.description)
    written: list[Path] = []
    skipped = 0
    for source, target in tqdm(jobs.items(), desc="upscale", unit="img", disable=not progress):
        try:
            image = decode_image(source)
        except UnreadableImage as exc:
            log.warning("skipping %s", exc)
            skipped += 1
            continue
        tiles = tile_count(*image.rgb.shape[:2], tile, overlap)
        with tqdm(total=tiles, desc=source.name, unit="tile", leave=False,
                  disable=not progress or tiles == 1) as tile_bar:
            sr = upscale_image(resolver, image.rgb, tile=tile, overlap=overlap, on_tiles=tile_bar.update)
        write_png(target, _with_alpha_and_mode(source, image, sr))
        log.debug("%s -> %s", source, target)
        written.append(target)
    if not written:
        raise PipelineError(f"none of the {len(jobs)} input images could be read; check the files given to upscale")
    log.info("wrote %d images to %s; skipped %d unreadable", len(written), out_dir, skipped)
    return written


def _with_alpha_and_mode(source: Path, image: Decoded, upscaled: np.ndarray) -> np.ndarray:
    """The network's RGB output in the input's form: a greyscale input comes out greyscale (ITU-R 601
    luma of the output), and an alpha plane, which the networks do not model, is upscaled with
    bicubic and kept; both are said in the log."""
    height, width = upscaled.shape[:2]
    if image.greyscale:
        log.info("%s is greyscale: the network's RGB output is written as greyscale (its luma)", source)
        upscaled = np.asarray(Image.fromarray(upscaled).convert("L"))
    if image.alpha is None:
        return upscaled
    log.info("%s has an alpha channel: the colours are super-resolved and the alpha is upscaled with bicubic",
             source)
    alpha = np.asarray(Image.fromarray(image.alpha).resize((width, height), Image.Resampling.BICUBIC))
    colour = upscaled[..., None] if upscaled.ndim == 2 else upscaled
    return np.concatenate([colour, alpha[..., None]], axis=2)


def _plan_outputs(inputs: list[Path], out_dir: Path) -> dict[Path, Path]:
    """Input image -> output PNG, refusing missing inputs and two inputs that would share an output."""
    jobs: dict[Path, Path] = {}
    owner: dict[Path, Path] = {}
    for given in map(Path, inputs):
        if given.is_dir():
            pairs = [(image, out_dir / image.relative_to(given).with_suffix(".png")) for image in list_images(given)]
        elif given.is_file():
            pairs = [(given, out_dir / f"{given.stem}.png")]
        else:
            raise PipelineError(f"input '{given}' does not exist; pass image files or folders of images")
        for source, target in pairs:
            if target in owner and owner[target] != source:
                raise PipelineError(
                    f"'{owner[target]}' and '{source}' would both be written to '{target}'; "
                    "rename one or upscale them in separate calls"
                )
            owner[target] = source
            jobs[source] = target
    inputs_resolved = {source.resolve() for source in jobs}
    for source, target in jobs.items():
        if target.resolve() in inputs_resolved:
            raise PipelineError(f"the output for '{source}' would be written over the input image '{target}'; "
                                "pass an --output folder that holds none of the inputs")
    if not jobs:
        raise PipelineError(f"no images found in {', '.join(map(str, inputs)) or 'the inputs'}; "
                            "pass PNG/JPEG files or folders holding them")
    return jobs


def _check_tracking_server(model: str, tracking_uri: str | None) -> None:
    """For ``runs:/`` and ``models:/`` models, fail within seconds when the tracking server is down
    (MLflow's own retries take minutes) and keep MLflow's retries short (``HTTP_RETRY_DEFAULTS``)."""
    if not model.startswith(("runs:/", "models:/")):
        return
    from pipeline.tracking.store import HTTP_RETRY_DEFAULTS, check_tracking, is_remote  # only here: it imports MLflow

    uri = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI", "")
    if is_remote(uri):
        for name, value in HTTP_RETRY_DEFAULTS.items():
            os.environ.setdefault(name, value)
        check_tracking(uri)


def load_model(model: str, device: torch.device, tracking_uri: str | None = None) -> SuperResolver:
    """``load_super_resolver`` set up for inference on ``device``: a down tracking server fails within
    seconds, subnormals are flushed, freed memory is kept, and every available CPU is used."""
    _check_tracking_server(model, tracking_uri)
    keep_freed_cpu_memory(device)
    flush_subnormals(device)
    use_available_cpus()
    return load_super_resolver(model, device, tracking_uri=tracking_uri)


def check_model(resolver: SuperResolver, model: str, scale: int | None, architecture: str | None) -> None:
    """Refuse a model of another scale than ``scale`` or another network than ``architecture`` (each when given)."""
    if scale is not None and resolver.scale != scale:
        raise PipelineError(
            f"model {model} was trained for x{resolver.scale} but --scale {scale} was given; "
            f"use a x{scale} model, or drop --scale (the model's x{resolver.scale} is used)"
        )
    if architecture is not None and resolver.model_name != architecture:
        raise PipelineError(
            f"model {model} is a '{resolver.model_name}' network but '{architecture}' was expected; "
            f"pass a {architecture} model or drop the architecture check"
        )
