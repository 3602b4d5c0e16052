"""ImageNet VGG16/VGG19 feature extractors for perceptual-style losses, from local weight files.

Weights come from, in order: an explicit file; the torch hub cache, where torchvision keeps its
official file (``<torch.hub.get_dir()>/checkpoints/vgg19-dcbb9e9d.pth``); a download of that file.
When none works the loss fails with a ``PipelineError``: a VGG loss is never computed with random weights.
"""

from __future__ import annotations

import functools
import hashlib
import http.client
import os
import tempfile
import urllib.request
from pathlib import Path
from typing import Iterable, Literal

import torch
from torch import Tensor, nn

from pipeline.errors import ConfigError, PipelineError
from pipeline.objectives.base import FrozenModule

Arch = Literal["vgg19", "vgg16"]

_ARCHS = {"vgg19": "VGG19_Weights", "vgg16": "VGG16_Weights"}  # torchvision.models weights enums, by builder name
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
DOWNLOAD_TIMEOUT_S = 30.0


def _check_arch(arch: str) -> None:
    if arch not in _ARCHS:
        raise ConfigError(f"unknown VGG architecture '{arch}'; choose one of: {', '.join(_ARCHS)}")


def _torchvision_arch(arch: Arch):
    """The torchvision builder and ImageNet weights of ``arch``, imported on first use (torchvision
    costs about a second to import, which commands that never build a VGG should not pay)."""
    import torchvision

    return getattr(torchvision.models, arch), getattr(torchvision.models, _ARCHS[arch]).IMAGENET1K_V1


def official_filename(arch: Arch) -> str:
    """The file name torchvision gives the ImageNet weights, e.g. ``vgg19-dcbb9e9d.pth``."""
    _check_arch(arch)
    return _torchvision_arch(arch)[1].url.rsplit("/", 1)[-1]


def hub_checkpoint_path(arch: Arch) -> Path:
    """Where torchvision would have stored the official weights file."""
    return Path(torch.hub.get_dir()) / "checkpoints" / official_filename(arch)


def _empty_features(arch: Arch) -> nn.Sequential:
    """The ``features`` part of the architecture, built on the meta device (no memory, no random init)."""
    with torch.device("meta"):
        return _torchvision_arch(arch)[0](weights=None).features


def layer_names(arch: Arch) -> list[str]:
    """Names of the feature layers in order: ``conv1_1, relu1_1, conv1_2, relu1_2, pool1, conv2_1, ...``."""
    _check_arch(arch)
    names, block, index = [], 1, 1
    for module in _empty_features(arch):
        if isinstance(module, nn.Conv2d):
            names.append(f"conv{block}_{index}")
        elif isinstance(module, nn.ReLU):
            names.append(f"relu{block}_{index}")
            index += 1
        else:
            names.append(f"pool{block}")
            block, index = block + 1, 1
    return names


def _download(url: str, destination: Path) -> None:
    """Fetch ``url`` to ``destination`` atomically; the sha256 must start with the hash in the file name."""
    expected_prefix = destination.stem.rsplit("-", 1)[-1]
    destination.parent.mkdir(parents=True, exist_ok=True)
    handle, partial = tempfile.mkstemp(dir=destination.parent, suffix=".part")
    digest = hashlib.sha256()
    try:
        with os.fdopen(handle, "wb") as out, urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as response:
            while chunk := response.read(1 << 20):
                digest.update(chunk)
                out.write(chunk)
        if not digest.hexdigest().startswith(expected_prefix):
            raise OSError(f"the downloaded file's sha256 does not start with {expected_prefix}")
        os.replace(partial, destination)
    finally:
        if os.path.exists(partial):
            os.unlink(partial)


@functools.lru_cache(maxsize=4)
def _read_features_state(path: str, modified_ns: int, size: int) -> dict[str, Tensor]:
    """The ``features`` tensors in ``path``, from a full torchvision VGG state dict (the official
    file) or a features-only one; cached per file version, so many loss terms read it once."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch.load raises many types for foreign or corrupt files
        raise PipelineError(f"'{path}' is not a readable PyTorch weights file ({exc}); replace it") from None
    if not isinstance(state, dict):
        raise PipelineError(f"'{path}' does not hold a state dict; give the torchvision VGG checkpoint")
    if any(key.startswith("features.") for key in state):
        return {key.removeprefix("features."): value for key, value in state.items() if key.startswith("features.")}
    return state


def _features_state(path: Path) -> dict[str, Tensor]:
    stat = path.stat()
    return _read_features_state(str(path), stat.st_mtime_ns, stat.st_size)


def _missing_weights_error(arch: Arch, setting: str, reason: str) -> PipelineError:
    path = hub_checkpoint_path(arch)
    return PipelineError(
        f"the ImageNet {arch.upper()} weights are missing ({reason}): put {path.name} in {path.parent} "
        f"or set {setting}=/path/to/{arch}.pth"
    )


def _wrong_file_error(path: Path, arch: Arch, reason: str) -> PipelineError:
    return PipelineError(
        f"'{path}' does not hold torchvision {arch.upper()} weights ({reason}); give the official {official_filename(arch)}"
    )


def load_vgg(arch: Arch = "vgg19", weights: str | Path | None = None, *,
             setting: str = "the loss term's 'weights' option") -> nn.Sequential:
    """ImageNet-trained ``torchvision`` VGG ``features`` (no classifier), in eval mode, frozen, on the CPU.

    ``weights``: a state dict file (a full torchvision VGG checkpoint or its ``features`` part);
    None: the torch hub cache, then a download. ``setting`` names the params key to give in errors.
    Its ReLUs are made out-of-place so pre-activation features can be read. On the CPU its tensors
    are the per-file cache's (no copy; never modify them in place). The caller must hold the result
    in a ``FrozenModule`` so checkpoints never contain it (``VGGFeatures`` does).
    """
    _check_arch(arch)
    if weights is not None:
        path = Path(weights).expanduser()
        if not path.is_file():
            raise PipelineError(
                f"VGG weights file '{path}' does not exist; fix {setting} or remove it to use {hub_checkpoint_path(arch)}"
            )
    else:
        path = hub_checkpoint_path(arch)
        if not path.is_file():
            try:
                _download(_torchvision_arch(arch)[1].url, path)
            except (OSError, http.client.HTTPException) as exc:
                raise _missing_weights_error(arch, setting, f"download failed: {exc}") from None
    features = _empty_features(arch)
    state = _features_state(path)
    missing = [key for key in features.state_dict() if key not in state]
    if missing:
        raise _wrong_file_error(path, arch, f"it has no tensor 'features.{missing[0]}'")
    try:
        features.load_state_dict(state, assign=True)
    except RuntimeError:
        raise _wrong_file_error(path, arch, "its tensor shapes do not fit") from None
    for module in features:
        if isinstance(module, nn.ReLU):
            module.inplace = False
    return features.eval().requires_grad_(False)


class _NamedLayers(nn.Module):
    """Runs VGG features up to the deepest wanted layer and returns the wanted outputs by name."""

    def __init__(self, features: nn.Sequential, names: list[str], wanted: set[str], normalize: bool):
        super().__init__()
        self.features = features
        self.names = names
        self.wanted = wanted
        self.normalize = normalize
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, image: Tensor) -> dict[str, Tensor]:
        x = (image - self.mean) / self.std if self.normalize else image
        found = {}
        for name, module in zip(self.names, self.features):
            x = module(x)
            if name in self.wanted:
                found[name] = x
        return found


class VGGFeatures(nn.Module):
    """Frozen ImageNet VGG activations by layer name: ``forward(image in [0, 1]) -> {name: [B, C, h, w]}``.

    ``normalize`` maps [0, 1] RGB to ImageNet statistics first, as the network was trained. The VGG
    lives in a ``FrozenModule``: out of ``state_dict`` and the optimiser, moved by ``.to(device)``,
    while gradients still flow to the input.
    """

    def __init__(self, layers: Iterable[str], arch: Arch = "vgg19", weights: str | Path | None = None,
                 normalize: bool = True, *, setting: str = "the loss term's 'weights' option"):
        super().__init__()
        wanted = set(layers)
        names = layer_names(arch)
        unknown = sorted(wanted - set(names))
        if unknown or not wanted:
            raise ValueError(f"layers must name {arch} layers, got {unknown or 'none'}; choose among {', '.join(names)}")
        depth = max(names.index(name) for name in wanted) + 1
        features = load_vgg(arch, weights, setting=setting)[:depth]
        self.extractor = FrozenModule(_NamedLayers(features, names[:depth], wanted, normalize))

    def forward(self, image: Tensor) -> dict[str, Tensor]:
        return self.extractor(image)
