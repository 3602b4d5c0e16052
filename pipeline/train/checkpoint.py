"""Checkpoints: atomic writes, weights-only reads, and rebuilding the networks from one.

A checkpoint is a dict of tensors, numbers, strings, lists and dicts only, so it loads with
``torch.load(weights_only=True)`` and cannot run code. Its ``meta`` says how to rebuild the
networks: ``{"format", "model": {"name", "args"}, "scale", "loss", "feature_channels", "params"}``.
"""

from __future__ import annotations

import os
import pickle
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from pipeline.config import LossConfig, Params
from pipeline.errors import PipelineError
from pipeline.redact import redact_data
from pipeline.models.registry import build_model
from pipeline.objectives.base import Objective
from pipeline.objectives.registry import build_objective

CHECKPOINT_FORMAT = 1
PLAIN_TYPES = (Tensor, int, float, str, bool, type(None))


def checkpoint_meta(params: Params, feature_channels: int) -> dict[str, Any]:
    """What ``restore_networks`` needs to rebuild the network and objective without params.yaml."""
    return {
        "format": CHECKPOINT_FORMAT,
        "model": {"name": params.model.name, "args": params.model.model_dump(mode="json")["args"]},
        "scale": params.train.scale,
        "loss": params.loss.model_dump(mode="json"),
        "feature_channels": feature_channels,
        "params": redact_data(params.model_dump(mode="json")),  # no credentials of URIs in files
    }


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Write ``state`` to ``path`` atomically: a temp file in the same folder, fsync, rename.

    A crash mid-write leaves the previous file intact. Anything but plain data is refused here,
    so every saved checkpoint is loadable weights-only.
    """
    _check_plain(state, "checkpoint")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            torch.save(state, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except (OSError, RuntimeError) as exc:  # torch reports a failed write (e.g. a full disk) as either
        reason = getattr(exc, "strerror", None) or (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise PipelineError(f"checkpoint '{path}' could not be written ({reason}); the previous one is intact: "
                            "free disk space, then continue with --resume") from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    folder = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)


def _check_plain(node: Any, where: str) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            if not isinstance(key, (str, int)):
                raise TypeError(f"{where} has a key of type {type(key).__name__}; use str or int keys")
            _check_plain(value, f"{where}[{key!r}]")
    elif isinstance(node, (list, tuple)):
        for index, value in enumerate(node):
            _check_plain(value, f"{where}[{index}]")
    elif not isinstance(node, PLAIN_TYPES):
        raise TypeError(f"{where} is of type {type(node).__name__}; checkpoints hold only tensors and plain data")


def load_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint with ``weights_only=True``: pickled code or objects are refused."""
    path = Path(path)
    if not path.is_file():
        raise PipelineError(f"checkpoint '{path}' does not exist; check the path (runs keep them in "
                            "<run_dir>/checkpoints/last.pt and best.pt)")
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        reason = str(exc).strip().splitlines()[0]
        raise PipelineError(f"checkpoint '{path}' holds more than weights and plain data ({reason}); "
                            "it is refused for safety, use a checkpoint written by this pipeline") from None
    except (RuntimeError, EOFError, OSError, zipfile.BadZipFile) as exc:  # OSError: EINVAL on a cut-off file
        raise PipelineError(f"checkpoint '{path}' is unreadable ({exc}); it is truncated or not a "
                            "checkpoint, use another one (e.g. best.pt or last.pt of the run)") from None
    if not isinstance(checkpoint, dict) or checkpoint.get("meta", {}).get("format") != CHECKPOINT_FORMAT:
        raise PipelineError(f"checkpoint '{path}' is not a srloss checkpoint of format {CHECKPOINT_FORMAT}; "
                            "use one written by `python -m pipeline train`")
    return checkpoint


def restore_networks(checkpoint: dict[str, Any]) -> tuple[nn.Module, Objective]:
    """Rebuild the network and objective from ``meta`` and load their weights, in eval mode.

    The EMA weights are loaded when the run kept an EMA (``train.ema``), else the trained ones.
    The objective is built without its ``loss.terms``: inference needs only its head and decode,
    and terms may need files (VGG weights) that an inference machine lacks.
    """
    meta = checkpoint["meta"]
    net = build_model(meta["model"]["name"], meta["scale"], meta["model"]["args"])
    loss = LossConfig.model_validate({**meta["loss"], "terms": {}})
    objective = build_objective(loss, meta["feature_channels"], meta["scale"],
                                total_iterations=meta["params"]["train"]["iterations"])
    net.load_state_dict(checkpoint["model"])
    objective.load_state_dict({k: v for k, v in checkpoint["objective"].items() if not k.startswith("terms.")})
    if checkpoint.get("ema"):
        net.load_state_dict(checkpoint["ema"]["net"])
        objective.head.load_state_dict(checkpoint["ema"]["head"])
    return net.eval(), objective.eval()
