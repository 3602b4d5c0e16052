"""Perceptual-metric weights on demand (``python -m pipeline weights fetch``).

Downloads the torchvision ImageNet backbones LPIPS taps (AlexNet, VGG16, SqueezeNet 1.1) and
pytorch-fid's FID Inception into the torch hub cache, ``torch.hub.get_dir()/checkpoints``
(``$TORCH_HOME/hub/checkpoints``), where ``LpipsMetric`` and ``FidMetric`` look when
``metrics.lpips.weights`` / ``metrics.fid.weights`` are unset, so evaluate finds them with no
params edit. LPIPS's calibrated linear layers ship inside the ``lpips`` package: nothing to fetch.

Only the sha256 prefix in each file name is published (``alexnet-owt-<7be5be79>.pth``), so the
check is the one ``torch.hub`` makes: the file's sha256 starts with that prefix. The bytes go to
a temporary file beside the target and are renamed to it only when complete and matching.
"""

from __future__ import annotations

import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch

from pipeline.data.download import file_sha256, transfer
from pipeline.errors import PipelineError

BASE_URL_ENV = "SRLOSS_WEIGHTS_URL"


@dataclass(frozen=True)
class Weights:
    """One checkpoint: its file name (carrying the sha256 prefix) and the folder URL it is served from."""

    file_name: str
    base_url: str
    used_by: str

    @property
    def sha256_prefix(self) -> str:
        return re.search(torch.hub.HASH_REGEX, self.file_name).group(1)


TORCHVISION = "https://download.pytorch.org/models/"
WEIGHTS: dict[str, Weights] = {
    "lpips-alex": Weights("alexnet-owt-7be5be79.pth", TORCHVISION, "LPIPS (metrics.lpips.net: alex)"),
    "lpips-vgg": Weights("vgg16-397923af.pth", TORCHVISION, "LPIPS (metrics.lpips.net: vgg)"),
    "lpips-squeeze": Weights("squeezenet1_1-b8a52dc0.pth", TORCHVISION, "LPIPS (metrics.lpips.net: squeeze)"),
    "fid": Weights("pt_inception-2015-12-05-6726825d.pth",
                   "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/", "FID"),
}
DEFAULT = ("lpips-alex", "fid")


def checkpoint_dir() -> Path:
    """The torch hub checkpoint folder (``$TORCH_HOME/hub/checkpoints``)."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def fetch_weights(names: list[str], base_url: str | None = None, *, timeout: float = 30.0,
                  progress: bool = True) -> dict[str, str]:
    """Fetch (or verify) each named checkpoint into the hub cache; ``{name: path}``.

    ``base_url`` (else ``$SRLOSS_WEIGHTS_URL``) replaces every file's upstream folder, e.g. a mirror.
    """
    unknown = [name for name in names if name not in WEIGHTS]
    if unknown:
        raise PipelineError(f"unknown weights {', '.join(unknown)}; choose from {', '.join(WEIGHTS)}")
    base_url = base_url or os.environ.get(BASE_URL_ENV)
    return {name: str(fetch_one(WEIGHTS[name], base_url, timeout, progress)) for name in names}


def fetch_one(weights: Weights, base_url: str | None, timeout: float, progress: bool) -> Path:
    """The verified checkpoint in the hub cache, downloaded through a temporary file when absent."""
    destination = checkpoint_dir() / weights.file_name
    if destination.is_file():
        _check(destination, weights, f"the cached {destination}", "delete it and fetch again")
        return destination
    url = (base_url.rstrip("/") + "/" if base_url else weights.base_url) + weights.file_name
    destination.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(prefix=f".{weights.file_name}.", suffix=".part", dir=destination.parent)
    os.close(handle)
    part = Path(name)
    try:
        transfer(url, part, timeout, progress,
                 hint=f"or copy {weights.file_name} into {destination.parent} yourself")
        _check(part, weights, f"'{url}'", "check the URL or retry")
        os.replace(part, destination)
    finally:
        part.unlink(missing_ok=True)
    return destination


def _check(path: Path, weights: Weights, what: str, fix: str) -> None:
    digest = file_sha256(path)
    if not digest.startswith(weights.sha256_prefix):
        raise PipelineError(f"{what} has sha256 {digest}, which does not start with the pinned prefix "
                            f"{weights.sha256_prefix} of {weights.file_name}, so it was not kept; {fix}")
