"""LPIPS (Zhang et al. 2018, "The Unreasonable Effectiveness of Deep Features as a Perceptual Metric").

``d(x, y) = sum_l mean_hw || w_l * (f_l(x) - f_l(y)) ||^2`` where ``f_l`` are channel-normalised
features of an ImageNet backbone (AlexNet, VGG16 or SqueezeNet 1.1) and ``w_l`` the linear weights
calibrated on human judgements, which ship inside the ``lpips`` package.

The backbone weights do not ship with it: they come from ``metrics.lpips.weights``, the torch hub
cache (``torch.hub.get_dir()/checkpoints``), or a download. Without them the metric means nothing,
so it is never computed from random weights: ``LpipsMetric.load`` returns ``Unavailable(reason)``.
"""

from __future__ import annotations

import logging
import pickle
import re
import socket
import urllib.request
import warnings
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import torch
from torch import Tensor, nn

from pipeline.config import LpipsConfig
from pipeline.errors import PipelineError

logger = logging.getLogger(__name__)

PROBE_TIMEOUT_S = 5.0
LPIPS_VERSION = "0.1"


@dataclass(frozen=True)
class Backbone:
    """A torchvision ImageNet classifier whose ``features`` LPIPS taps, named by its builder and weights enum
    in ``torchvision.models``; torchvision (about 1 s to import, ``torch._dynamo`` with it) is imported on
    first use, so a process that trains or scores with LPIPS off never pays for it."""

    label: str
    builder: str
    weights: str

    def build(self) -> nn.Module:
        from torchvision import models

        return getattr(models, self.builder)()

    @property
    def url(self) -> str:
        from torchvision import models

        return getattr(models, self.weights).IMAGENET1K_V1.url

    @property
    def file_name(self) -> str:
        return Path(urlparse(self.url).path).name


BACKBONES: dict[str, Backbone] = {
    "alex": Backbone("AlexNet", "alexnet", "AlexNet_Weights"),
    "vgg": Backbone("VGG16", "vgg16", "VGG16_Weights"),
    "squeeze": Backbone("SqueezeNet 1.1", "squeezenet1_1", "SqueezeNet1_1_Weights"),
}

_CHECKPOINT_ERRORS = (OSError, EOFError, RuntimeError, ValueError, TypeError, KeyError, pickle.UnpicklingError)


@dataclass(frozen=True)
class Unavailable:
    """A metric that cannot be computed here; ``reason`` is reported in its place."""

    reason: str


class _Missing(Exception):
    """Internal: the backbone weights cannot be had; the message is the user-facing reason."""


def hub_checkpoint_path(net: str) -> Path:
    """Where torchvision keeps the ImageNet checkpoint of ``net`` in the torch hub cache."""
    return Path(torch.hub.get_dir()) / "checkpoints" / BACKBONES[net].file_name


class LpipsMetric(nn.Module):
    """Per-image LPIPS of ``[B, 3, H, W]`` batches in [0, 1]; lower is more similar.

    Always in eval mode (the ``lpips`` linear layers carry dropout); gradients are not tracked.
    Move it with ``.to(device)``.
    """

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model.eval().requires_grad_(False)

    @classmethod
    def load(cls, config: LpipsConfig, allow_download: bool = True) -> LpipsMetric | Unavailable:
        """Build from ``metrics.lpips``, or say why not (one warning is logged).

        A ``weights`` path that is missing or is not a checkpoint of the configured backbone is a
        ``PipelineError``: the user asked for that file explicitly.
        """
        if not config.enabled:
            return Unavailable("LPIPS disabled in params (metrics.lpips.enabled is false)")
        try:
            backbone = _load_backbone(config, allow_download)
            model = _build_lpips(config.net, backbone)
        except _Missing as missing:
            logger.warning("%s", missing)
            return Unavailable(str(missing))
        return cls(model)

    def train(self, mode: bool = True) -> LpipsMetric:
        return super().train(False)

    @torch.no_grad()
    def forward(self, sr: Tensor, hr: Tensor) -> Tensor:
        """LPIPS distance per image, ``[B]``; the inputs are mapped to [-1, 1] as LPIPS expects."""
        if sr.shape != hr.shape or sr.dim() != 4 or sr.shape[1] != 3:
            raise PipelineError(
                f"LPIPS needs two [B, 3, H, W] RGB batches of the same shape, got {tuple(sr.shape)} (SR) and "
                f"{tuple(hr.shape)} (HR); crop or resize them to match"
            )
        return self.model(sr * 2 - 1, hr * 2 - 1).flatten()


def _load_backbone(config: LpipsConfig, allow_download: bool) -> nn.Module:
    """The torchvision classifier with its ImageNet weights, loaded strictly."""
    backbone = BACKBONES[config.net]
    if config.weights is not None:
        path = Path(config.weights).expanduser()
        if not path.is_file():
            raise PipelineError(
                f"metrics.lpips.weights '{path}' does not exist; "
                f"point it at a copy of {backbone.file_name} or remove it"
            )
        try:
            return _read_checkpoint(config.net, path)
        except _CHECKPOINT_ERRORS as exc:
            raise PipelineError(
                f"metrics.lpips.weights '{path}' is not a torchvision {backbone.label} checkpoint ({_short(exc)}); "
                f"point it at a copy of {backbone.file_name}"
            ) from None
    cached = hub_checkpoint_path(config.net)
    if not cached.is_file():
        if not allow_download:
            raise _Missing(
                f"LPIPS unavailable: the {backbone.label} ImageNet weights are not in {cached} and downloading is "
                "switched off; set metrics.lpips.weights to a local copy"
            )
        _download(backbone, cached)
    try:
        return _read_checkpoint(config.net, cached)
    except _CHECKPOINT_ERRORS as exc:
        raise _Missing(
            f"LPIPS unavailable: {cached} is not a readable {backbone.label} checkpoint ({_short(exc)}); "
            "delete it to download it again, or set metrics.lpips.weights to a local copy"
        ) from None


def _read_checkpoint(net: str, path: Path) -> nn.Module:
    state = torch.load(path, map_location="cpu", weights_only=True)
    model = BACKBONES[net].build()
    model.load_state_dict(state, strict=True)
    return model


def _download(backbone: Backbone, destination: Path) -> None:
    """Fetch the torchvision checkpoint into the hub cache, failing within seconds when offline."""
    try:
        host, port = _first_hop(backbone.url)
        socket.create_connection((host, port), timeout=PROBE_TIMEOUT_S).close()
        destination.parent.mkdir(parents=True, exist_ok=True)
        hash_prefix = re.search(torch.hub.HASH_REGEX, destination.name)
        torch.hub.download_url_to_file(
            backbone.url, str(destination), hash_prefix=hash_prefix.group(1) if hash_prefix else None, progress=False
        )
    except (OSError, RuntimeError) as exc:
        raise _Missing(
            f"LPIPS unavailable: the {backbone.label} ImageNet weights are not in {destination} and cannot be "
            f"downloaded ({_short(exc)}); run `python -m pipeline weights fetch` where there is a network, or set "
            "metrics.lpips.weights to a local copy"
        ) from None


def _first_hop(url: str) -> tuple[str, int]:
    """The host and port a download of ``url`` connects to first: the HTTPS proxy when one is set."""
    target = urlparse(urllib.request.getproxies().get("https") or url)
    return target.hostname or "", target.port or (443 if target.scheme == "https" else 80)


def _build_lpips(net: str, backbone: nn.Module) -> nn.Module:
    """``lpips.LPIPS`` with the given backbone's features and the package's calibrated linear layers
    (imported here: training with LPIPS switched off needs no ``lpips`` package)."""
    try:
        import lpips
    except ImportError:
        raise _Missing("LPIPS unavailable: the lpips package is not installed; install it (requirements.lock) "
                       "or set metrics.lpips.enabled to false") from None
    linear_path = Path(lpips.__file__).parent / "weights" / f"v{LPIPS_VERSION}" / f"{net}.pth"
    if not linear_path.is_file():
        raise _Missing(f"LPIPS unavailable: the lpips package lacks its linear weights {linear_path}; reinstall lpips")
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=UserWarning, module="torchvision")
        model = lpips.LPIPS(net=net, version=LPIPS_VERSION, pretrained=False, pnet_rand=True, verbose=False)
    features = backbone.features.state_dict()
    sliced = {key: features[key.split(".", 1)[1]] for key in model.net.state_dict()}
    model.net.load_state_dict(sliced, strict=True)
    linear = torch.load(linear_path, map_location="cpu", weights_only=True)
    for name, layer in model.named_children():
        if re.fullmatch(r"lin\d+", name):
            prefix = f"{name}."
            layer.load_state_dict({k[len(prefix) :]: v for k, v in linear.items() if k.startswith(prefix)}, strict=True)
    return model


def _short(exc: BaseException) -> str:
    """The first line of an exception message, for one-sentence errors."""
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
