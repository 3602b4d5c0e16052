"""Trainable loss weights (TLW): a CNN predicts per-pixel weights of the pixel loss.

Mellatshahi & Kasaei, "Trainable Loss Weights in Super-Resolution", arXiv:2301.10575.

A weighting CNN on ``concat(HR, SR)`` ends in a sigmoid and ``FixedSum(k)``, so every weight is in
[0, 1] and each (image, channel) mean is ``k``. Training alternates, every iteration:

- E-step (``aux_step``, SR frozen): with ``c1 = (1 - w) SR + w HR`` and ``c2 = w SR + (1 - w) HR``,
  one optimiser step on ``mean(log(D(c1, HR) + eps) - log(D(c2, HR) + eps))``: weights should be
  high where putting HR in place of SR helps most under the distance ``D``;
- M-step (``loss``, weights frozen): ``mean(w * |SR - HR|)`` (``base: l1``) or ``mean(w (SR - HR)^2)``
  (``base: l2``).

``k`` grows as ``k(t) = k_start + k_span (1 - exp(-t / (k_tau T)))`` with ``T`` the total iterations.
The authors' code (github.com/arashfree/TLW-in-Super-Resolution, ``train.py``) sets
``k = 0.3 + 0.6 (1 - exp(-epoch / 100))`` at the start of each of its 100 epochs; mapping those
100 epochs onto this run's ``T`` iterations (``epoch = 100 t / T``) gives the default ``k_tau = 1``,
so ``k`` ends at ``0.3 + 0.6 (1 - 1/e) = 0.679`` (their last epoch, 99, uses 0.677). A run of ``E``
of their epochs is ``k_tau = 100 / E``.

``variant: stochastic`` (the default: the authors' code trains ``WeightStochastic`` with
``TLWLossStochastic``) draws weights as relaxed Bernoulli (Gumbel-sigmoid) samples
``b = sigmoid((logit w + logit u) / temperature)``, ``u ~ U(0, 1)``; the E-step uses one sample,
the M-step a soft minimum over ``samples`` draws weighted by how good each draw is,
``-log(sum_s p_s exp(-e_s) / sum_s p_s)`` with ``e_s = mean(b_s * err)`` and
``p_s = (D(c2_s, HR) + eps) / (D(c1_s, HR) + eps)`` (the authors' code adds ``eps`` to the
denominator only; adding it to both keeps ``p_s > 0`` when SR equals HR). The noise comes from a
generator seeded by ``(seed, iteration, step)``, so a resumed run draws what an uninterrupted one does.

The VGG distance is built at the first E-step, so that inference from a checkpoint never needs VGG
weights; a missing file then stops training at its first iteration.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Literal

import torch
from torch import Tensor, nn

from pipeline.objectives.base import Objective
from pipeline.objectives.fixedsum import fixed_sum
from pipeline.objectives.registry import register_objective
from pipeline.objectives.tlw_distance import LPIPS_LAYERS, build_distance

FIRST_KERNELS = (7, 5)


class WeightingNet(nn.Module):
    """``depth`` convs (kernels 7, 5, then 3) with batch norm and ReLU, ending in 3 channels and a sigmoid.

    The default (64 features, depth 4) is the authors' weighting network. Input: ``concat(HR, SR)``.
    """

    def __init__(self, features: int = 64, depth: int = 4):
        super().__init__()
        if features < 1 or depth < 2:
            raise ValueError(f"the weighting net needs features >= 1 and depth >= 2, got {features}, {depth}")
        layers: list[nn.Module] = []
        channels = 6
        for index in range(depth - 1):
            kernel = FIRST_KERNELS[index] if index < len(FIRST_KERNELS) else 3
            conv = nn.Conv2d(channels, features, kernel, padding=kernel // 2)
            layers += [conv, nn.BatchNorm2d(features), nn.ReLU(inplace=True)]
            channels = features
        layers += [nn.Conv2d(channels, 3, 3, padding=1), nn.Sigmoid()]
        self.body = nn.Sequential(*layers)

    def forward(self, hr: Tensor, sr: Tensor) -> Tensor:
        return self.body(torch.cat([hr, sr], dim=1))


@register_objective("tlw")
class TrainableLossWeights(Objective):
    """RGB head; ``loss = weight * mean(w * err(SR, HR))`` with ``w`` from the EM-trained weighting net.

    Options:
        base: ``l1`` or ``l2`` weighted error.
        variant: ``stochastic`` as the authors' code, or ``deterministic`` (docs/losses.md).
        weight: weight of the term in the total.
        k_start, k_span, k_tau: the ``k`` schedule (``k_tau`` a fraction of the run).
        features, depth: the weighting CNN: ``depth`` convs (kernels 7, 5, then 3) of ``features`` maps with
            batch norm and ReLU, the last one to 3 channels.
        lr: the weighting CNN's Adam.
        distance: ``D``: ``multiscale`` (no pretrained weights) or ``vgg`` (unlearned VGG LPIPS).
        vgg_arch, vgg_weights: for ``distance: vgg`` (weights as for ``perceptual``).
        eps: inside the logs.
        temperature, samples, seed: the stochastic variant.
    """

    def __init__(
        self,
        in_channels: int,
        scale: int,
        terms: dict[str, Any] | None = None,
        total_iterations: int = 1,
        base: Literal["l1", "l2"] = "l1",
        variant: Literal["deterministic", "stochastic"] = "stochastic",
        weight: float = 1.0,
        k_start: float = 0.3,
        k_span: float = 0.6,
        k_tau: float = 1.0,
        features: int = 64,
        depth: int = 4,
        lr: float = 1e-4,
        distance: Literal["multiscale", "vgg"] = "multiscale",
        vgg_arch: str = "vgg16",
        vgg_weights: str | Path | None = None,
        eps: float = 1e-3,
        temperature: float = 0.1,
        samples: int = 3,
        seed: int = 0,
    ):
        super().__init__(in_channels, scale, terms, total_iterations)
        if base not in ("l1", "l2") or variant not in ("deterministic", "stochastic"):
            raise ValueError(f"base must be 'l1' or 'l2' and variant 'deterministic' or 'stochastic', got '{base}', '{variant}'")
        if not (0 < k_start and k_span >= 0 and k_start + k_span < 1 and k_tau > 0):
            raise ValueError(f"the k schedule needs 0 < k_start, 0 <= k_span, k_start + k_span < 1, k_tau > 0; "
                             f"got {k_start}, {k_span}, {k_tau}")
        if eps <= 0 or temperature <= 0 or samples < 1:
            raise ValueError(f"eps and temperature must be > 0 and samples >= 1, got {eps}, {temperature}, {samples}")
        if distance not in ("multiscale", "vgg") or vgg_arch not in LPIPS_LAYERS:
            raise ValueError(f"distance must be 'multiscale' or 'vgg' and vgg_arch one of {', '.join(LPIPS_LAYERS)}, "
                             f"got '{distance}', '{vgg_arch}'")
        self.base, self.variant, self.tlw_weight = base, variant, float(weight)
        self.k_start, self.k_span, self.k_tau = float(k_start), float(k_span), float(k_tau)
        self.eps, self.temperature, self.samples, self.seed = float(eps), float(temperature), samples, seed
        self.weighting = WeightingNet(features, depth)
        self.aux_optimizers["weighting"] = torch.optim.Adam(self.weighting.parameters(), lr=lr)
        self.distance_options = (distance, vgg_arch, vgg_weights)
        self.distance: nn.Module | None = None

    def k_at(self, iteration: int) -> float:
        """``k_start + k_span (1 - exp(-iteration / (k_tau * total_iterations)))``."""
        return self.k_start + self.k_span * (1 - math.exp(-iteration / (self.k_tau * self.total_iterations)))

    def _generator(self, device: torch.device, iteration: int, step: int) -> torch.Generator:
        """A generator seeded by ``(seed, iteration, step)``: the draws depend on nothing else."""
        return torch.Generator(device=device).manual_seed(hash((self.seed, iteration, step)) % 2**63)

    def _relaxed_sample(self, w: Tensor, generator: torch.Generator) -> Tensor:
        """Gumbel-sigmoid sample of Bernoulli(w): ``sigmoid((logit w + logit u) / temperature)``."""
        w = w * 0.999 + 0.0005
        u = torch.rand(w.shape, generator=generator, device=w.device, dtype=w.dtype) * 0.999 + 0.0005
        return torch.sigmoid((torch.logit(w) + torch.logit(u)) / self.temperature)

    def _distances(self, w: Tensor, sr: Tensor, hr: Tensor) -> tuple[Tensor, Tensor]:
        """``D(c1, HR)`` and ``D(c2, HR)`` per image, in one batched call."""
        if self.distance is None:
            self.distance = build_distance(*self.distance_options).to(sr.device)
        c1 = (1 - w) * sr + w * hr
        c2 = w * sr + (1 - w) * hr
        both = self.distance(torch.cat([c1, c2]), torch.cat([hr, hr]))
        return both[: sr.shape[0]], both[sr.shape[0]:]

    def aux_step(self, sr: Tensor, hr: Tensor, iteration: int) -> dict[str, float]:
        """E-step: one optimiser step of the weighting net on the criterion; SR is detached."""
        logs = super().aux_step(sr, hr, iteration)
        k = self.k_at(iteration)
        sr = sr.detach()
        optimizer = self.aux_optimizers["weighting"]
        optimizer.zero_grad(set_to_none=True)
        with torch.enable_grad():
            w = fixed_sum(self.weighting(hr, sr), k)
            if self.variant == "stochastic":
                w = self._relaxed_sample(w, self._generator(sr.device, iteration, 0))
            d1, d2 = self._distances(w, sr, hr)
            criterion = (torch.log(d1 + self.eps) - torch.log(d2 + self.eps)).mean()
            criterion.backward()
        optimizer.step()
        stats = torch.stack([criterion.detach(), w.detach().mean(), w.detach().std()]).tolist()
        logs.update({"tlw/criterion": stats[0], "tlw/w_mean": stats[1], "tlw/w_std": stats[2], "tlw/k": k})
        return logs

    def _error(self, sr: Tensor, hr: Tensor) -> Tensor:
        return (sr - hr).abs() if self.base == "l1" else (sr - hr).square()

    def own_terms(self, out: Tensor, hr: Tensor, iteration: int) -> dict[str, tuple[float, Tensor]]:
        """M-step: the weighted pixel loss, weights computed without gradient."""
        error = self._error(out, hr)
        with torch.no_grad():
            w = fixed_sum(self.weighting(hr, out.detach()), self.k_at(iteration))
        if self.variant == "deterministic":
            return {"tlw": (self.tlw_weight, (w * error).mean())}
        generator = self._generator(hr.device, iteration, 1)
        return {"tlw": (self.tlw_weight, self._soft_min(w, out.detach(), hr, error, generator))}

    def _soft_min(self, w: Tensor, sr: Tensor, hr: Tensor, error: Tensor, generator: torch.Generator) -> Tensor:
        """``mean_b -log(sum_s p_s exp(-e_s) / sum_s p_s)`` over ``samples`` relaxed draws."""
        weighted, scores = [], []
        for _ in range(self.samples):
            with torch.no_grad():
                sample = self._relaxed_sample(w, generator)
                d1, d2 = self._distances(sample, sr, hr)
                scores.append((d2 + self.eps) / (d1 + self.eps))
            weighted.append((sample * error).mean(dim=(1, 2, 3)))
        p = torch.stack(scores)
        e = torch.stack(weighted)
        return -(torch.logsumexp(torch.log(p) - e, dim=0) - torch.log(p.sum(dim=0))).mean()
