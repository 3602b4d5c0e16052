"""FID (Heusel et al. 2017, "GANs Trained by a Two Time-Scale Update Rule Converge to a Local Nash
Equilibrium") between SR and HR patches, as SR papers report it.

``FID = ||mu_sr - mu_hr||^2 + Tr(C_sr + C_hr - 2 (C_sr C_hr)^(1/2))`` over the 2048-d pool3
features (``metrics.fid.dims``; pytorch-fid's 64/192/768 taps are for quick checks, not for
comparison with papers) of the FID Inception network (the TensorFlow Inception ported by pytorch-fid), fed
non-overlapping ``patch x patch`` windows of the cropped images, bilinearly resized to 299 and
scaled to [-1, 1]. The network is pytorch-fid's ``fid_inception_v3`` built without its download;
its weights come from ``metrics.fid.weights``, else the torch hub cache (``hub_checkpoint``, filled
by ``python -m pipeline weights fetch``), loaded with ``torch.load(weights_only=True)``.
Without them FID is ``Unavailable(reason)``: it is never computed from random weights. The
distance is pytorch-fid's ``calculate_frechet_distance``.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from pytorch_fid.fid_score import calculate_frechet_distance
from pytorch_fid.inception import (FIDInceptionA, FIDInceptionC, FIDInceptionE_1, FIDInceptionE_2,
                                   _inception_v3)
from torch import Tensor, nn

from pipeline.config import FidConfig
from pipeline.metrics.lpips_metric import Unavailable

WEIGHTS_FILE = "pt_inception-2015-12-05-6726825d.pth"
INPUT_SIDE = 299
BATCH = 32


def fid_inception() -> nn.Module:
    """pytorch-fid's FID Inception v3 with untrained weights (``fid_inception_v3`` minus the download)."""
    net = _inception_v3(num_classes=1008, aux_logits=False, weights=None)
    net.Mixed_5b = FIDInceptionA(192, pool_features=32)
    net.Mixed_5c = FIDInceptionA(256, pool_features=64)
    net.Mixed_5d = FIDInceptionA(288, pool_features=64)
    net.Mixed_6b = FIDInceptionC(768, channels_7x7=128)
    net.Mixed_6c = FIDInceptionC(768, channels_7x7=160)
    net.Mixed_6d = FIDInceptionC(768, channels_7x7=160)
    net.Mixed_6e = FIDInceptionC(768, channels_7x7=192)
    net.Mixed_7b = FIDInceptionE_1(1280)
    net.Mixed_7c = FIDInceptionE_2(2048)
    return net


def hub_checkpoint() -> Path:
    """Where ``python -m pipeline weights fetch`` puts the FID Inception: the torch hub cache."""
    return Path(torch.hub.get_dir()) / "checkpoints" / WEIGHTS_FILE


class FidMetric(nn.Module):
    """Pool3 features of patches, and the Fréchet distance between two sets of them."""

    def __init__(self, inception: nn.Module, patch: int, dims: int = 2048) -> None:
        super().__init__()
        self.net = inception.eval().requires_grad_(False)
        self.patch = patch
        self.dims = dims

    @classmethod
    def load(cls, config: FidConfig) -> FidMetric | Unavailable:
        """The metric with the configured weights, or why it cannot be computed."""
        path = Path(config.weights).expanduser() if config.weights is not None else hub_checkpoint()
        if config.weights is None and not path.is_file():
            return Unavailable(f"FID unavailable: no Inception weights in {path.parent}; run `python -m pipeline "
                               f"weights fetch` or set metrics.fid.weights to pytorch-fid's {WEIGHTS_FILE}")
        net = fid_inception()
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
            net.load_state_dict(state)
        except FileNotFoundError:
            return Unavailable(f"FID unavailable: metrics.fid.weights '{path}' does not exist")
        except (OSError, EOFError, RuntimeError, ValueError, TypeError, KeyError, pickle.UnpicklingError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            return Unavailable(f"FID unavailable: '{path}' is not the FID Inception's weights ({first[:160]})")
        return cls(net, config.patch, config.dims)

    def patches(self, image: np.ndarray) -> Tensor:
        """Non-overlapping ``patch x patch`` windows of an ``H x W x 3`` uint8 image, ``[N, 3, p, p]`` in [0, 1]."""
        p = self.patch
        rows, columns = image.shape[0] // p, image.shape[1] // p
        tiles = image[:rows * p, :columns * p].reshape(rows, p, columns, p, 3).transpose(0, 2, 4, 1, 3)
        return torch.from_numpy(np.ascontiguousarray(tiles.reshape(-1, 3, p, p))).float() / 255

    @torch.inference_mode()
    def features(self, patches: Tensor) -> np.ndarray:
        """``[N, dims]`` float64 features (pool3 for 2048)."""
        device = next(self.net.parameters()).device
        out = []
        for start in range(0, patches.shape[0], BATCH):
            x = F.interpolate(patches[start:start + BATCH].to(device), size=(INPUT_SIDE, INPUT_SIDE),
                              mode="bilinear", align_corners=False)
            out.append(self._tap(2 * x - 1).cpu().double().numpy())
        return np.concatenate(out) if out else np.zeros((0, self.dims))

    def _tap(self, x: Tensor) -> Tensor:
        """The spatially averaged output of the block that has ``dims`` channels (pytorch-fid's blocks)."""
        net = self.net
        for layer in (net.Conv2d_1a_3x3, net.Conv2d_2a_3x3, net.Conv2d_2b_3x3, net.maxpool1, net.Conv2d_3b_1x1,
                      net.Conv2d_4a_3x3, net.maxpool2, net.Mixed_5b, net.Mixed_5c, net.Mixed_5d, net.Mixed_6a,
                      net.Mixed_6b, net.Mixed_6c, net.Mixed_6d, net.Mixed_6e, net.Mixed_7a, net.Mixed_7b,
                      net.Mixed_7c):
            x = layer(x)
            if x.shape[1] == self.dims and layer in (net.maxpool1, net.maxpool2, net.Mixed_6e, net.Mixed_7c):
                break
        return torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)

    @staticmethod
    def distance(first: np.ndarray, second: np.ndarray) -> float:
        """Fréchet distance between Gaussians fitted to two ``[N, d]`` feature sets (N >= 2 each)."""
        return float(calculate_frechet_distance(first.mean(axis=0), np.cov(first, rowvar=False),
                                                second.mean(axis=0), np.cov(second, rowvar=False)))
