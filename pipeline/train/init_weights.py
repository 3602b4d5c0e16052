"""Starting a run from pretrained weights (``train.init_from``), read weights-only.

A source is one of:
- a model of this project: a checkpoint (``best.pt``, ``last.pt``), a ``models/<objective>`` folder,
  or an MLflow model URI / folder in srloss's weights-only format (``pipeline.inference``); its EMA
  weights are taken when the run kept an EMA;
- a state dict written by another framework: ``.safetensors``, or ``.pth``/``.pt`` read with
  ``torch.load(weights_only=True)``. A BasicSR-style file nests it under ``params`` and/or
  ``params_ema``: ``train.init_key`` picks one (default ``params_ema`` when present, else ``params``).
  Keys in this project's names load as they are (``head.*`` keys are the objective's head); keys in
  BasicSR's names are renamed by ``BASICSR_NAMES`` (EDSR and RCAN), see ``from_basicsr``.

The network's weights load strictly: every key and every shape must match ``model.name``/``model.args``.
The objective's head is loaded too when ``train.init_head`` is set and the source has a head of
exactly its keys and shapes (e.g. an RGB head for a regression objective); otherwise it keeps the
initialisation ``build_objective`` gave it (ordered or plain), so in a sweep every objective starts
from the same network weights and its own head.
"""

from __future__ import annotations

import logging
import pickle
import re
import zipfile
from pathlib import Path

import torch
from torch import Tensor, nn

from pipeline.config import URI_SCHEME
from pipeline.errors import PipelineError
from pipeline.models.edsr_arch import DIV2K_RGB_MEAN

log = logging.getLogger(__name__)

State = dict[str, Tensor]

BASICSR_IMG_RANGE = 255.0
"""BasicSR's EDSR and RCAN compute on ``(x - mean) * 255`` and output ``conv_last(...) / 255 + mean``."""

BASICSR_NAMES: dict[str, list[tuple[str, str]]] = {
    "edsr": [(r"^conv_first\.", "extract."), (r"^body\.(\d+)\.conv1\.", r"body.\1.body.0."),
             (r"^body\.(\d+)\.conv2\.", r"body.\1.body.2."), (r"^conv_after_body\.", "body.{blocks}."),
             (r"^upsample\.", "upsample."), (r"^conv_last\.", "head.conv.")],
    "rcan": [(r"^conv_first\.", "extract."),
             (r"^body\.(\d+)\.residual_group\.(\d+)\.rcab\.([02])\.", r"body.\1.\2.body.\3."),
             (r"^body\.(\d+)\.residual_group\.(\d+)\.rcab\.3\.attention\.", r"body.\1.\2.body.3.weights."),
             (r"^body\.(\d+)\.conv\.", "body.\\1.{blocks}."), (r"^conv_after_body\.", "body.{groups}."),
             (r"^upsample\.", "upsample."), (r"^conv_last\.", "head.conv.")],
}
"""BasicSR key -> this project's key, per network: ``(pattern, replacement)``, first match wins."""


def initialise_from(source: str, model_name: str, net: nn.Module, objective: nn.Module, key: str | None = None,
                    head: bool = True) -> str:
    """Load ``source``'s weights into ``net`` (strictly) and, where it fits, ``objective.head``; returns
    what was loaded, in words, for the log."""
    net_state, head_state, origin = read_weights(source, model_name, net, key)
    _load_strictly(net, net_state, source)
    loaded_head = head and head_state is not None and _same_shapes(objective.head.state_dict(), head_state)
    if loaded_head:
        objective.head.load_state_dict(head_state)
    head_text = "and the head" if loaded_head else "(the head keeps its own initialisation)"
    return f"network weights {head_text} from {origin}"


def read_weights(source: str, model_name: str, net: nn.Module, key: str | None) -> tuple[State, State | None, str]:
    """``(network state, head state or None, description)`` of ``source``; nothing is unpickled."""
    path = Path(source)
    state = None if URI_SCHEME.match(source) or path.is_dir() else _read_state_dict(path)
    if state is None or isinstance(state.get("meta"), dict):  # a model of this project
        from pipeline.inference import load_super_resolver  # here, not at the top: inference imports train

        resolver = load_super_resolver(source)
        return resolver.net.state_dict(), resolver.objective.head.state_dict(), f"'{source}' ({resolver.description})"
    state, picked = _pick(state, key, path)
    if any(name.startswith(("conv_first.", "conv_last.")) for name in state):
        state = from_basicsr(state, model_name, net)
        picked += ", BasicSR names"
    net_state = {k: v for k, v in state.items() if not k.startswith("head.")}
    head_state = {k.removeprefix("head."): v for k, v in state.items() if k.startswith("head.")} or None
    return net_state, head_state, f"'{path}' ({picked})"


def from_basicsr(state: State, model_name: str, net: nn.Module) -> State:
    """Rename BasicSR keys (``BASICSR_NAMES``) and fold its pixel range into the first and last convs.

    BasicSR: ``f0 = W0 (255 (x - m)) + b0`` and ``y = (W_L g + b_L) / 255 + m``. Here ``f0 = W0' (x - m) + b0``
    and the head is ``y = W_L' g + b_L'``, so ``W0' = 255 W0`` and ``W_L' = W_L / 255``, ``b_L' = b_L / 255 + m``
    (``m`` the DIV2K mean, the same in both); every other layer is unchanged.
    """
    if model_name not in BASICSR_NAMES:
        raise PipelineError(f"train.init_from has BasicSR key names, which are mapped only for "
                            f"{', '.join(sorted(BASICSR_NAMES))} (not '{model_name}'); convert the file to this "
                            "project's names (docs/fine-tuning.md)")
    blocks = {"blocks": len(net.body[0]) - 1 if model_name == "rcan" else len(net.body) - 1,
              "groups": len(net.body) - 1}
    renamed: State = {}
    for name, value in state.items():
        for pattern, replacement in BASICSR_NAMES[model_name]:
            if re.match(pattern, name):
                name = re.sub(pattern, replacement.format(**blocks), name)
                break
        renamed[name] = value.clone()
    if "extract.weight" in renamed:
        renamed["extract.weight"] *= BASICSR_IMG_RANGE
    if "head.conv.weight" in renamed and renamed["head.conv.weight"].shape[0] == 3:
        mean = torch.tensor(DIV2K_RGB_MEAN, dtype=renamed["head.conv.bias"].dtype)
        renamed["head.conv.weight"] /= BASICSR_IMG_RANGE
        renamed["head.conv.bias"] = renamed["head.conv.bias"] / BASICSR_IMG_RANGE + mean
    return renamed


def _read_state_dict(path: Path) -> dict:
    if not path.is_file():
        raise PipelineError(f"train.init_from '{path}' not found; pass a checkpoint (e.g. models/<objective>/best.pt "
                            "or runs/<name>/checkpoints/best.pt), a models/<objective> folder, an MLflow model URI, "
                            "or a .pth/.safetensors state dict")
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(path)
        except (SafetensorError, OSError) as exc:
            raise PipelineError(f"train.init_from '{path}' is not a readable safetensors file ({exc}); "
                                "pass another weights file") from None
    if not zipfile.is_zipfile(path):
        raise PipelineError(f"train.init_from '{path}' is not a weights file (not a torch archive); pass a "
                            ".pt/.pth checkpoint or state dict, or a .safetensors file")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, zipfile.BadZipFile) as exc:
        reason = str(exc).strip().splitlines()[0]
        raise PipelineError(f"train.init_from '{path}' holds more than tensors and plain data ({reason}); it is "
                            "refused for safety: save its state_dict() alone, or as .safetensors") from None
    if not isinstance(state, dict):
        raise PipelineError(f"train.init_from '{path}' holds a {type(state).__name__}, not a state dict; save the "
                            "network's state_dict()")
    return state


def _pick(state: dict, key: str | None, path: Path) -> tuple[State, str]:
    """The nested state dict ``key`` (default ``params_ema``, else ``params``), or the file itself."""
    nested = [name for name in ("params_ema", "params") if isinstance(state.get(name), dict)]
    if key is not None:
        if not isinstance(state.get(key), dict):
            raise PipelineError(f"train.init_key '{key}' is not a state dict in '{path}' (it has "
                                f"{', '.join(nested) or 'no params or params_ema'}); set train.init_key to one of "
                                "them, or null")
        return state[key], f"'{key}'"
    if nested:
        return state[nested[0]], f"'{nested[0]}'"
    tensors = {k: v for k, v in state.items() if isinstance(v, Tensor)}
    if not tensors:
        raise PipelineError(f"train.init_from '{path}' holds no tensors at its top level and no params/params_ema; "
                            "set train.init_key to the entry that holds the state dict")
    return tensors, "a plain state dict"


def _load_strictly(net: nn.Module, state: State, source: str) -> None:
    expected = net.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = sorted(k for k in set(expected) & set(state) if expected[k].shape != state[k].shape)
    problems = [f"{label} {', '.join(keys[:3])}{' ...' if len(keys) > 3 else ''}"
                for label, keys in (("missing", missing), ("unexpected", unexpected), ("of another shape", wrong))
                if keys]
    if problems:
        raise PipelineError(f"train.init_from '{source}' does not fit the network of model.name/model.args (keys "
                            f"{'; '.join(problems)}); set model.name and model.args to the network that was saved")
    net.load_state_dict(state)


def _same_shapes(expected: State, given: State) -> bool:
    return set(expected) == set(given) and all(expected[k].shape == given[k].shape for k in expected)
