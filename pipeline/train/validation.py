"""Validation on whole images: PSNR/SSIM (and LPIPS when its weights exist) per image set.

SR is the objective's decoded image, clamped and quantised to 8-bit levels as a saved PNG would
be, measured against the modcropped HR with ``metrics.crop_border`` (default: the scale) and
``metrics.y_channel``. Keys are ``<set>/<metric>``: ``val/psnr``, ``Set5/ssim``, ... The bicubic
baseline (MATLAB ``imresize`` of the same LR) is measured once per set as ``<set>/bicubic_psnr``
and ``<set>/bicubic_ssim`` and repeated in every result, so a run shows whether it beats it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor, nn

from pipeline.config import MetricsConfig
from pipeline.data.paired import ImagePair
from pipeline.degrade.imresize import imresize_uint8
from pipeline.metrics.lpips_metric import LpipsMetric, Unavailable
from pipeline.metrics.torch_metrics import psnr, quantize, ssim
from pipeline.objectives.base import Objective
from pipeline.train.device import DeviceSetup


class Sample(NamedTuple):
    """Aligned HR-sized uint8 crops of one validation image, for visual comparison."""

    name: str
    bicubic: np.ndarray
    sr: np.ndarray
    hr: np.ndarray


class Validator:
    """Measures a network + objective on fixed image sets; the first set provides the samples."""

    def __init__(self, sets: dict[str, Sequence[ImagePair]], scale: int, config: MetricsConfig, setup: DeviceSetup,
                 sample_count: int = 3, sample_crop: int = 96):
        self.sets = sets
        self.setup = setup
        self.crop_border = scale if config.crop_border is None else config.crop_border
        self.y_channel = config.y_channel
        self.sample_count = sample_count
        self.sample_crop = sample_crop
        lpips_metric = LpipsMetric.load(config.lpips)
        self.lpips = None if isinstance(lpips_metric, Unavailable) else lpips_metric.to(setup.device)
        self.sample_bicubic: list[np.ndarray] = []  # only these are kept: a set's upscales would double its memory
        self.baseline: dict[str, float] = {}
        for set_index, (name, pairs) in enumerate(sets.items()):
            scores = []
            for image_index, pair in enumerate(pairs):
                upscaled = imresize_uint8(pair.lr, scale)
                if set_index == 0 and image_index < sample_count:
                    self.sample_bicubic.append(upscaled)
                scores.append(self._psnr_ssim(_as_batch(upscaled, setup.device), _as_batch(pair.hr, setup.device)))
            self.baseline[f"{name}/bicubic_psnr"] = float(np.mean([s[0] for s in scores]))
            self.baseline[f"{name}/bicubic_ssim"] = float(np.mean([s[1] for s in scores]))

    def _psnr_ssim(self, sr: Tensor, hr: Tensor) -> tuple[float, float]:
        return (psnr(sr, hr, self.crop_border, self.y_channel).item(),
                ssim(sr, hr, self.crop_border, self.y_channel).item())

    @torch.inference_mode()
    def __call__(self, net: nn.Module, objective: Objective) -> tuple[dict[str, float], list[Sample]]:
        """Metrics averaged over each set, plus comparison crops of the first set's first images."""
        modes = net.training, objective.training
        net.eval()
        objective.eval()
        metrics = dict(self.baseline)
        samples: list[Sample] = []
        for set_index, (name, pairs) in enumerate(self.sets.items()):
            scores: dict[str, list[float]] = {"psnr": [], "ssim": [], "lpips": []}
            for image_index, pair in enumerate(pairs):
                sr = self._super_resolve(net, objective, pair.lr)
                hr = _as_batch(pair.hr, self.setup.device)
                value_psnr, value_ssim = self._psnr_ssim(sr, hr)
                scores["psnr"].append(value_psnr)
                scores["ssim"].append(value_ssim)
                if self.lpips is not None:
                    scores["lpips"].append(self.lpips(sr, hr).item())
                if set_index == 0 and image_index < self.sample_count:
                    samples.append(self._sample(pair, self.sample_bicubic[image_index], sr))
            metrics.update({f"{name}/{key}": float(np.mean(values)) for key, values in scores.items() if values})
        net.train(modes[0])
        objective.train(modes[1])
        return metrics, samples

    def _super_resolve(self, net: nn.Module, objective: Objective, lr_image: np.ndarray) -> Tensor:
        lr = _as_batch(lr_image, self.setup.device).contiguous(memory_format=self.setup.memory_format)
        with self.setup.autocast():
            return quantize(objective.predict(net(lr)).float())

    def _sample(self, pair: ImagePair, bicubic: np.ndarray, sr: Tensor) -> Sample:
        height, width = pair.hr.shape[:2]
        side_y, side_x = min(self.sample_crop, height), min(self.sample_crop, width)
        top, left = (height - side_y) // 2, (width - side_x) // 2
        window = np.s_[top : top + side_y, left : left + side_x]
        sr_image = (sr[0].permute(1, 2, 0) * 255).round().byte().cpu().numpy()
        return Sample(pair.name, bicubic[window].copy(), sr_image[window].copy(), pair.hr[window].copy())


def _as_batch(image: np.ndarray, device: torch.device) -> Tensor:
    """``H x W x 3`` uint8 (a read-only mapped image too) -> ``[1, 3, H, W]`` float in [0, 1] on ``device``."""
    return torch.tensor(image).to(device).permute(2, 0, 1).unsqueeze(0).float() / 255
