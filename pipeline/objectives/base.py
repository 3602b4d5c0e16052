"""The objective abstraction: head + loss terms + decode.

A network ends in HR features ``[B, F, H, W]``. An ``Objective``:
- ``head`` turns them into what its loss needs (RGB, class logits, bins, branches);
- ``loss(out, hr, iteration)`` returns named terms and their weighted ``total``;
- ``decode(out)`` turns head output into an RGB image in [0, 1] for metrics and inference;
  ``predict(features)`` is ``decode(head(features))``, which an objective may compute in blocks;
  ``decodes`` names the alternative decodes of one trained head and ``use_decode(name)`` picks
  one, so one checkpoint can be scored under each (e.g. fine-grained ``anchor`` and ``expectation``);
- ``aux_step(sr, hr, iteration)`` updates the objective's own trainable parts (a weighting
  network, a discriminator) with their own optimisers; the trainer calls it once per
  iteration, after the forward pass and before the SR update, so the trainer stays loss-agnostic.

Extra ``terms`` (``{name: weight}`` or ``{name: {weight: w, **options}}``) are ``LossTerm``s on
the decoded image and add to any objective, e.g. ``{l1: 1.0, grad2: 0.1}``.
"""

from __future__ import annotations

from typing import Any, Callable

import torch
from torch import Tensor, nn

from pipeline.errors import ConfigError


class FrozenModule(nn.Module):
    """Holds a pretrained, frozen network (VGG, LPIPS) outside ``state_dict`` and ``parameters``.

    Checkpoints stay small and never contain ImageNet weights; ``.to(device)`` still moves it.
    """

    def __init__(self, net: nn.Module):
        super().__init__()
        net.eval().requires_grad_(False)
        self.__dict__["net"] = net

    def _apply(self, fn: Callable, recurse: bool = True):
        self.__dict__["net"]._apply(fn)
        return super()._apply(fn, recurse)

    def train(self, mode: bool = True) -> "FrozenModule":
        return super().train(mode)  # the wrapped net stays in eval mode

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return self.__dict__["net"](*args, **kwargs)


class LossTerm(nn.Module):
    """A loss on decoded images: ``forward(sr, hr) -> scalar``.

    A term with trainable parts of its own (a discriminator) registers its optimisers in
    ``aux_optimizers`` and updates them in ``aux_step``; they are checkpointed with the objective.
    """

    def __init__(self) -> None:
        super().__init__()
        self.aux_optimizers: dict[str, torch.optim.Optimizer] = {}

    def forward(self, sr: Tensor, hr: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def aux_step(self, sr: Tensor, hr: Tensor, iteration: int) -> dict[str, float]:
        return {}


class RGBHead(nn.Module):
    """Plain regression head: 3x3 conv from features to RGB."""

    def __init__(self, in_channels: int):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, 3, 3, padding=1)

    def forward(self, features: Tensor) -> Tensor:
        return self.conv(features)


class Objective(nn.Module):
    """Base objective: RGB regression head, identity decode, only the configured terms.

    Subclasses override ``make_head``, ``decode`` and ``own_terms`` (terms computed on the head
    output itself, e.g. a cross-entropy), and may register auxiliary optimisers.
    """

    decodes: tuple[str, ...] = ()

    def __init__(self, in_channels: int, scale: int, terms: dict[str, Any] | None = None, total_iterations: int = 1):
        super().__init__()
        from pipeline.objectives.registry import build_term

        self.scale = scale
        self.total_iterations = max(1, total_iterations)
        self.head = self.make_head(in_channels)
        self.weights: dict[str, float] = {}
        self.terms = nn.ModuleDict()
        for name, spec in (terms or {}).items():
            weight, options = (spec, {}) if isinstance(spec, (int, float)) else _split_weight(name, spec)
            self.weights[name] = float(weight)
            self.terms[name] = build_term(name, options)
        self.aux_optimizers: dict[str, torch.optim.Optimizer] = {}

    def make_head(self, in_channels: int) -> nn.Module:
        return RGBHead(in_channels)

    def forward(self, features: Tensor) -> Tensor:
        return self.head(features)

    def decode(self, out: Tensor, block_elements: int | None = None) -> Tensor:
        """The SR image of head output ``out``. A decode that works in blocks holds at most
        ``block_elements`` values at a time (None: its own default; one block for a graph of fixed
        shape, ``pipeline.export``); others ignore it."""
        return out

    def use_decode(self, name: str) -> None:
        """Decode with ``name``, one of ``decodes``, from now on (the loss does not change)."""
        if name not in self.decodes:
            choices = ", ".join(self.decodes) or "none (it has one decode)"
            raise ConfigError(f"decode '{name}' is not one of this objective's decodes: {choices}")
        self.decode_mode = name

    def predict(self, features: Tensor) -> Tensor:
        """The SR image for network features, ``decode(head(features))``: what inference and validation call."""
        return self.decode(self(features))

    def own_terms(self, out: Tensor, hr: Tensor, iteration: int) -> dict[str, tuple[float, Tensor]]:
        """Terms on the head output: ``{name: (weight, value)}``. None for plain regression."""
        return {}

    def loss(self, out: Tensor, hr: Tensor, iteration: int = 0) -> dict[str, Tensor]:
        """All terms, unweighted, by name, plus ``total`` = sum of weight * term."""
        parts = dict(self.own_terms(out, hr, iteration))
        if len(self.terms):
            sr = self.decode(out)
            for name, term in self.terms.items():
                parts[name] = (self.weights[name], term(sr, hr))
        if not parts:
            raise ConfigError("the objective has no loss term; add one under loss.terms, e.g. {l1: 1.0}")
        logged = {name: value for name, (_, value) in parts.items()}
        logged["total"] = sum(weight * value for weight, value in parts.values())
        return logged

    def aux_step(self, sr: Tensor, hr: Tensor, iteration: int) -> dict[str, float]:
        """Update the objective's own trainable parts; ``sr`` is detached. Returns logs."""
        logs: dict[str, float] = {}
        for name, term in self.terms.items():
            logs.update({f"{name}/{k}": v for k, v in term.aux_step(sr, hr, iteration).items()})
        return logs

    @property
    def has_aux_step(self) -> bool:
        """Whether ``aux_step`` does anything: the objective or one of its terms overrides it."""
        overridden = type(self).aux_step is not Objective.aux_step
        return overridden or any(type(term).aux_step is not LossTerm.aux_step for term in self.terms.values())

    def sr_parameters(self) -> list[nn.Parameter]:
        """Parameters trained with the network by the SR optimiser: the head's."""
        return list(self.head.parameters())

    def all_aux_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """The objective's own optimisers and its terms', by unique name."""
        found = dict(self.aux_optimizers)
        for name, term in self.terms.items():
            found.update({f"{name}/{k}": opt for k, opt in term.aux_optimizers.items()})
        return found

    def aux_state_dict(self) -> dict[str, Any]:
        return {name: opt.state_dict() for name, opt in self.all_aux_optimizers().items()}

    def load_aux_state_dict(self, state: dict[str, Any]) -> None:
        for name, opt in self.all_aux_optimizers().items():
            if name in state:
                opt.load_state_dict(state[name])


def _split_weight(name: str, spec: dict[str, Any]) -> tuple[float, dict[str, Any]]:
    options = dict(spec)
    if "weight" not in options:
        raise ConfigError(f"loss term '{name}' needs a 'weight', e.g. {{{name}: {{weight: 1.0}}}}")
    return float(options.pop("weight")), options
