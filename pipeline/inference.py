"""Inference: a trained (network, objective) pair as one module, loaded from a checkpoint or MLflow,
and tiled upscaling of images of any size in bounded memory.

Tiling: each axis of the LR image is cut into the fewest windows of at most ``tile`` pixels that
overlap by ``2 * overlap``, all of near-equal size (they differ by at most one pixel); each window is
super-resolved and only its core (the window minus ``overlap`` LR pixels on every side that is not
an image border) is kept. An axis of ``L`` pixels in ``n`` windows computes ``L + 2 * overlap * (n - 1)``
pixels, the least any tiling with that overlap and window bound can. When ``overlap`` covers the
network's receptive field radius (in LR pixels), every kept pixel sees exactly the context it sees
in whole-image inference, so the tiled result equals the untiled one.
"""

from __future__ import annotations

import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from pipeline.config import URI_SCHEME
from pipeline.errors import PipelineError, exception_summary
from pipeline.metrics.torch_metrics import quantize
from pipeline.mlflow_model import weights_file
from pipeline.train.checkpoint import load_checkpoint, restore_networks


class SuperResolver(nn.Module):
    """``SR = clamp(objective.predict(net(lr)), 0, 1)`` for ``lr`` [B, 3, h, w] in [0, 1]."""

    def __init__(self, net: nn.Module, objective: nn.Module, model_name: str, objective_name: str):
        super().__init__()
        self.net = net
        self.objective = objective
        self.scale = int(net.scale)
        self.model_name = model_name
        self.objective_name = objective_name

    @property
    def description(self) -> str:
        return f"{self.model_name} x{self.scale} trained with the '{self.objective_name}' objective"

    def forward(self, lr: Tensor) -> Tensor:
        return self.objective.predict(self.net(lr)).clamp(0, 1)


def load_super_resolver(source: str | Path, device: torch.device | str = "cpu",
                        tracking_uri: str | None = None) -> SuperResolver:
    """A ``SuperResolver`` in eval mode on ``device`` from a checkpoint (``.pt``), a sweep's
    ``models/<objective>`` folder (its ``best.pt``) or an MLflow model.

    MLflow sources are URIs (``runs:/<run_id>/<objective>-seed<seed>``, ``models:/<name>/<version>``,
    ``file:``, ``http(s):``, ...) or a local folder holding an ``MLmodel`` file; ``runs:/`` and
    ``models:/`` are resolved against ``tracking_uri`` (also used as the model registry; default:
    MLflow's own, i.e. ``$MLFLOW_TRACKING_URI``). Only models in srloss's weights-only format
    (``pipeline.mlflow_model``) are accepted; nothing is unpickled.
    Checkpoints are rebuilt with ``pipeline.train.checkpoint.restore_networks``.
    """
    text = str(source)
    path = Path(text)
    if URI_SCHEME.match(text):
        resolver = _load_mlflow_model(text, tracking_uri)
    elif (path / "MLmodel").is_file():
        resolver = _load_checkpoint(weights_file(path, text))
    elif path.is_dir():
        if not (path / "best.pt").is_file():
            raise PipelineError(f"model folder '{path}' holds neither best.pt nor an MLmodel file; "
                                f"{_model_suggestion()}")
        resolver = _load_checkpoint(path / "best.pt")
    else:
        resolver = _load_checkpoint(path)
    return resolver.to(device).eval()


def _model_suggestion(root: Path = Path("models")) -> str:
    """Where models are: the study's ``models/<objective>/best.pt`` found here, else the patterns."""
    found = sorted(root.glob("*/best.pt"))
    if found:
        shown = ", ".join(str(path) for path in found[:4]) + (", ..." if len(found) > 4 else "")
        return f"the study's models here are {shown} (a models/<objective> folder works too)"
    return ("pass models/<objective>/best.pt (or the folder models/<objective>) from the study, "
            "runs/<name>/checkpoints/best.pt from `python -m pipeline train`, or an MLflow URI "
            "runs:/<run_id>/<objective>-seed<seed>")


def _load_checkpoint(path: Path) -> SuperResolver:
    if not path.is_file():
        raise PipelineError(f"model '{path}' not found; {_model_suggestion()}")
    if not zipfile.is_zipfile(path):
        sibling = path.with_name("best.pt")
        hint = f"pass {sibling}" if sibling.is_file() and sibling != path else _model_suggestion()
        raise PipelineError(f"model '{path}' is not a checkpoint (not a torch archive: another kind of file, or "
                            f"truncated); {hint}")
    checkpoint = load_checkpoint(path, map_location="cpu")
    try:
        meta = checkpoint["meta"]
        net, objective = restore_networks(checkpoint)
        return SuperResolver(net, objective, model_name=meta["model"]["name"],
                             objective_name=meta["loss"]["objective"])
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:  # a meta or weights that do not fit
        raise PipelineError(f"checkpoint '{path}' does not rebuild its networks ({exception_summary(exc)}); use one "
                            "written by `python -m pipeline train`") from None


def _load_mlflow_model(uri: str, tracking_uri: str | None) -> SuperResolver:
    """Download the model's files (no code runs), then read its weights-only checkpoint."""
    try:  # here, not at the top: it adds seconds to every checkpoint-only upscale, and GPU images may lack it
        import mlflow
        from mlflow.exceptions import MlflowException
    except ImportError:
        raise PipelineError(f"MLflow model '{uri}' needs the mlflow package, which is not installed; install it "
                            "(requirements.lock) or pass a checkpoint file instead") from None

    with tempfile.TemporaryDirectory(prefix="srloss-model-") as folder:
        try:
            local = mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=folder, tracking_uri=tracking_uri,
                                                        registry_uri=tracking_uri)
        except (MlflowException, OSError) as exc:
            raise PipelineError(
                f"MLflow model '{uri}' could not be loaded ({exception_summary(exc)}); check the URI and "
                "MLFLOW_TRACKING_URI, or pass a checkpoint file instead"
            ) from None
        if not (Path(local) / "MLmodel").is_file():
            raise PipelineError(f"MLflow model '{uri}' has no MLmodel file; pass the URI of a logged model "
                                "(runs:/<run_id>/<objective>-seed<seed> or models:/<name>/<version>)")
        return _load_checkpoint(weights_file(Path(local), uri))


def to_uint8(image: Tensor) -> Tensor:
    """[0, 1] floats to uint8 levels with the validation metrics' rounding (``torch_metrics.quantize``)."""
    return quantize(image.float()).mul_(255).round_().to(torch.uint8)


def tile_windows(length: int, tile: int, overlap: int) -> list[tuple[int, int, int, int]]:
    """``(start, stop, keep_from, keep_to)`` of the fewest near-equal windows of at most ``tile`` pixels.

    ``n = ceil((length - 2 * overlap) / (tile - 2 * overlap))`` windows (one when ``length <= tile``)
    share ``length + 2 * overlap * (n - 1)`` pixels as evenly as integers allow. Kept ranges partition
    ``[0, length)``; a kept pixel is at least ``overlap`` pixels from every window edge that is not an
    image border.
    """
    if overlap < 0 or tile <= 2 * overlap:
        raise PipelineError(f"tile {tile} must be larger than twice the overlap {overlap}; "
                            "raise --tile or lower --overlap")
    if length <= tile:
        return [(0, length, 0, length)]
    count = -(-(length - 2 * overlap) // (tile - 2 * overlap))
    computed = length + 2 * overlap * (count - 1)
    windows: list[tuple[int, int, int, int]] = []
    start = 0
    for index in range(count):
        stop = start + computed // count + (index < computed % count)
        keep_from = 0 if index == 0 else start + overlap
        keep_to = length if index == count - 1 else stop - overlap
        windows.append((start, stop, keep_from, keep_to))
        start = stop - 2 * overlap
    return windows


def computed_pixels(height: int, width: int, tile: int, overlap: int) -> int:
    """LR pixels the network processes to upscale a ``height x width`` image with this tiling."""
    return (sum(stop - start for start, stop, _, _ in tile_windows(height, tile, overlap))
            * sum(stop - start for start, stop, _, _ in tile_windows(width, tile, overlap)))


def tile_count(height: int, width: int, tile: int, overlap: int) -> int:
    """How many windows ``upscale_image`` cuts a ``height x width`` image into."""
    return len(tile_windows(height, tile, overlap)) * len(tile_windows(width, tile, overlap))


@torch.inference_mode()
def upscale_image(resolver: SuperResolver, image: np.ndarray, tile: int = 256, overlap: int = 16,
                  batch: int = 1, on_tiles: Callable[[int], None] | None = None) -> np.ndarray:
    """Super-resolve an ``H x W x 3`` uint8 image to ``(H*s) x (W*s) x 3`` uint8.

    Windows of one shape (at most four shapes: two sizes per axis) go through the network ``batch``
    at a time, so memory beyond the output array is that of ``batch`` forward passes on inputs of
    at most ``tile x tile``, whatever the image size. Runs on the resolver's device and dtype.
    ``on_tiles(n)`` is called after each batch of ``n`` windows (a progress bar's ``update``).
    """
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"upscale_image expects an H x W x 3 uint8 array, got {image.dtype} {image.shape}")
    if batch < 1:
        raise ValueError(f"batch must be >= 1, got {batch}")
    scale = resolver.scale
    height, width = image.shape[:2]
    weights = next(resolver.parameters())
    by_shape: dict[tuple[int, int], list] = {}
    for rows in tile_windows(height, tile, overlap):
        for cols in tile_windows(width, tile, overlap):
            by_shape.setdefault((rows[1] - rows[0], cols[1] - cols[0]), []).append((rows, cols))
    output = np.empty((height * scale, width * scale, 3), dtype=np.uint8)
    for windows in by_shape.values():
        for first in range(0, len(windows), batch):
            chunk = windows[first:first + batch]
            lr = np.stack([image[y:y_end, x:x_end] for (y, y_end, _, _), (x, x_end, _, _) in chunk])
            lr = torch.from_numpy(lr).to(weights.device).permute(0, 3, 1, 2).to(weights.dtype) / 255
            sr = resolver(lr)
            for k, ((y, _, top, bottom), (x, _, left, right)) in enumerate(chunk):
                kept = sr[k, :, (top - y) * scale:(bottom - y) * scale, (left - x) * scale:(right - x) * scale]
                output[top * scale:bottom * scale, left * scale:right * scale] = (
                    to_uint8(kept).permute(1, 2, 0).cpu().numpy())
            if on_tiles is not None:
                on_tiles(len(chunk))
    return output
