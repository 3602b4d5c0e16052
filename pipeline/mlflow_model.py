"""The MLflow model format of srloss: weights plus architecture, never pickled code.

A logged model is an MLflow ``python_function`` model whose ``loader_module`` is this module and
whose data is a weights-only checkpoint (``pipeline.train.checkpoint``: meta, network, objective and
EMA weights; no optimiser). Loading reads the ``MLmodel`` file as plain YAML, refuses any other
flavour or loader, and rebuilds the networks through the registries from the checkpoint's meta,
which ``torch.load(weights_only=True)`` reads. So a model folder written by anyone else (e.g. a
pickled ``mlflow.pytorch`` model whose ``__reduce__`` runs a command) is refused before any of its
bytes are unpickled. ``mlflow.pyfunc.load_model`` also works: it imports this module and calls
``_load_pyfunc``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from pipeline.errors import PipelineError

LOADER_MODULE = __name__
INFERENCE_KEYS = ("meta", "model", "objective", "ema")


def logged_model_name(objective: str, seed: int) -> str:
    """The logged model's name: ``<objective>-seed<seed>``, e.g. ``l1-seed0``."""
    return f"{objective}-seed{seed}"


def inference_checkpoint(checkpoint: dict[str, Any]) -> dict[str, Any]:
    """The part of a training checkpoint that inference needs (what ``restore_networks`` reads)."""
    return {key: checkpoint.get(key) for key in INFERENCE_KEYS}


def architecture_params(meta: dict[str, Any]) -> dict[str, Any]:
    """The network and objective a checkpoint's ``meta`` rebuilds, as the logged model's params."""
    return {"model.name": meta["model"]["name"], "model.args": meta["model"]["args"], "scale": meta["scale"],
            "loss.objective": meta["loss"]["objective"], "feature_channels": meta["feature_channels"]}


def weights_file(folder: Path, source: str) -> Path:
    """The weights-only checkpoint inside an MLflow model ``folder`` logged by srloss.

    Anything else (another flavour, another loader module, data outside the folder) raises a
    ``PipelineError`` naming ``source``; nothing in the folder is unpickled here.
    """
    folder = Path(folder)
    refusal = (f"MLflow model '{source}' is not an srloss weights-only model ({{}}); it is refused because "
               "loading it could run code: pass a model logged by srloss training or a .pt checkpoint")
    try:
        mlmodel = yaml.safe_load((folder / "MLmodel").read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise PipelineError(refusal.format(f"its MLmodel file is unreadable: {type(exc).__name__}")) from None
    flavors = mlmodel.get("flavors") if isinstance(mlmodel, dict) else None
    pyfunc = flavors.get("python_function") if isinstance(flavors, dict) else None
    if not isinstance(pyfunc, dict) or pyfunc.get("loader_module") != LOADER_MODULE:
        names = ", ".join(sorted(flavors)) if isinstance(flavors, dict) else "none"
        raise PipelineError(refusal.format(f"flavors: {names}"))
    data = (folder / str(pyfunc.get("data", ""))).resolve()
    if not data.is_relative_to(folder.resolve()) or not data.is_file():
        raise PipelineError(refusal.format(f"its data '{pyfunc.get('data')}' is not a file inside the model"))
    return data


class _PyfuncSuperResolver:
    """``predict``: float32 LR batches ``[B, 3, h, w]`` in [0, 1] -> SR batches, for ``mlflow.pyfunc``."""

    def __init__(self, resolver: torch.nn.Module):
        self.resolver = resolver

    def predict(self, model_input: np.ndarray, params: dict[str, Any] | None = None) -> np.ndarray:
        with torch.inference_mode():
            return self.resolver(torch.as_tensor(np.asarray(model_input, dtype=np.float32))).numpy()


def _load_pyfunc(data_path: str) -> _PyfuncSuperResolver:
    """Called by ``mlflow.pyfunc.load_model`` with the model's data file."""
    # The package's one import cycle, on purpose (tools/import_graph.py allows it): ``inference`` reads
    # this module's format, and this loader, which MLflow calls by name, needs ``inference``'s loader.
    # Imported here, only when MLflow calls it, so neither module needs the other to import.
    from pipeline.inference import load_super_resolver

    return _PyfuncSuperResolver(load_super_resolver(Path(data_path)))
