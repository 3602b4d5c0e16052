"""Name -> network class. A network maps an LR image batch in [0, 1] to an HR feature map.

Contract of every registered network ``Net(scale, **args)``:
- ``forward(lr: [B, 3, h, w]) -> [B, net.feature_channels, h*scale, w*scale]``;
- ``feature_channels: int`` and ``scale: int`` attributes;
- it never produces RGB itself: the objective's head does (see ``pipeline.objectives.base``).
"""

from __future__ import annotations

import inspect

from torch import nn

from pipeline.errors import ConfigError

MODELS: dict[str, type[nn.Module]] = {}


def register_model(name: str):
    """Class decorator: make the network buildable from params as ``model.name: <name>``."""

    def add(cls: type[nn.Module]) -> type[nn.Module]:
        MODELS[name] = cls
        return cls

    return add


def check_model(name: str, args: dict | None = None) -> type[nn.Module]:
    """The registered class of ``name``; unknown names or arguments are a ``ConfigError``. Builds nothing."""
    import pipeline.models  # noqa: F401  (registers the families)

    if name not in MODELS:
        raise ConfigError(f"unknown model '{name}'; choose one of: {', '.join(sorted(MODELS))}")
    cls = MODELS[name]
    accepted = set(inspect.signature(cls.__init__).parameters) - {"self", "scale"}
    unknown = sorted(set(args or {}) - accepted)
    if unknown:
        raise ConfigError(
            f"model '{name}' has no argument {', '.join(repr(u) for u in unknown)}; "
            f"allowed: {', '.join(sorted(accepted)) or 'none'}"
        )
    return cls


def build_model(name: str, scale: int, args: dict | None = None) -> nn.Module:
    """Instantiate a registered network; unknown names or arguments are a ``ConfigError``."""
    cls = check_model(name, args)
    args = dict(args or {})
    try:
        return cls(scale=scale, **args)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"model '{name}' with {args or 'default arguments'} at x{scale}: {exc}") from None
