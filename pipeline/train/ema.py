"""Exponential moving average of weights (Polyak & Juditsky 1992; as in BasicSR's ``net_g_ema``).

After every optimiser step ``shadow <- decay * shadow + (1 - decay) * weight`` for every floating
point parameter and buffer; other buffers (counters) are copied. The average covers what makes the
image: the network and the objective's head (a discriminator or weighting network is not averaged).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import Tensor, nn


class ModelEma:
    """Shadow copies of the state of named modules, e.g. ``{"net": net, "head": objective.head}``."""

    def __init__(self, modules: dict[str, nn.Module], decay: float):
        self.modules = modules
        self.decay = decay
        self.shadow = {name: {k: v.detach().clone() for k, v in module.state_dict().items()}
                       for name, module in modules.items()}
        self._averaged: list[Tensor] = []
        self._live: list[Tensor] = []
        self._copied: list[tuple[Tensor, Tensor]] = []
        for name, module in modules.items():
            for key, live in module.state_dict().items():
                shadow = self.shadow[name][key]
                if shadow.is_floating_point():
                    self._averaged.append(shadow)
                    self._live.append(live)
                else:
                    self._copied.append((shadow, live))

    @torch.no_grad()
    def update(self) -> None:
        """One averaging step; the live tensors are the modules' own (updated in place by the optimiser)."""
        if self._averaged:
            torch._foreach_lerp_(self._averaged, self._live, 1.0 - self.decay)
        for shadow, live in self._copied:
            shadow.copy_(live)

    @contextlib.contextmanager
    def applied(self) -> Iterator[None]:
        """Load the averaged weights into the modules for the block, then put the trained ones back."""
        trained = {name: {k: v.detach().clone() for k, v in module.state_dict().items()}
                   for name, module in self.modules.items()}
        for name, module in self.modules.items():
            module.load_state_dict(self.shadow[name])
        try:
            yield
        finally:
            for name, module in self.modules.items():
                module.load_state_dict(trained[name])

    def state_dict(self) -> dict[str, dict[str, Tensor]]:
        return self.shadow

    def load_state_dict(self, state: dict[str, dict[str, Tensor]]) -> None:
        for name, tensors in state.items():
            for key, value in tensors.items():
                self.shadow[name][key].copy_(value)
