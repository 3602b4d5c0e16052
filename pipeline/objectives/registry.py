"""Names in params -> objective and loss-term classes.

``loss.objective`` picks an ``Objective`` subclass (head + own terms + decode);
``loss.terms`` picks ``LossTerm``s on the decoded image. Adding a loss is one new file that
decorates its class with ``register_objective`` or ``register_term``, plus a test.
"""

from __future__ import annotations

import inspect
from typing import Any

from pipeline.errors import ConfigError

OBJECTIVES: dict[str, type] = {}
TERMS: dict[str, type] = {}
OBJECTIVE_RESERVED = {"in_channels", "scale", "terms", "total_iterations"}  # set by build_objective, not params


def register_objective(name: str):
    def add(cls: type) -> type:
        OBJECTIVES[name] = cls
        return cls

    return add


def register_term(name: str):
    def add(cls: type) -> type:
        TERMS[name] = cls
        return cls

    return add


def _check_args(kind: str, name: str, cls: type, args: dict[str, Any], reserved: set[str]) -> None:
    params = inspect.signature(cls.__init__).parameters
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return
    accepted = set(params) - {"self"} - reserved
    unknown = sorted(set(args) - accepted)
    if unknown:
        raise ConfigError(
            f"{kind} '{name}' has no option {', '.join(repr(u) for u in unknown)}; "
            f"allowed: {', '.join(sorted(accepted)) or 'none'}"
        )


def check_term(name: str, options: dict[str, Any] | None = None) -> type:
    """The registered class of loss term ``name``; unknown names or options are a ``ConfigError``."""
    import pipeline.objectives  # noqa: F401  (registers every loss)

    if name not in TERMS:
        raise ConfigError(f"unknown loss term '{name}'; choose one of: {', '.join(sorted(TERMS))}")
    _check_args("loss term", name, TERMS[name], dict(options or {}), set())
    return TERMS[name]


def check_loss(loss_config) -> None:
    """``loss.objective``, its ``args`` and every ``loss.terms`` entry against the registries; builds
    nothing (so no weights file is read)."""
    import pipeline.objectives  # noqa: F401

    name = loss_config.objective
    if name not in OBJECTIVES:
        raise ConfigError(f"unknown objective '{name}'; choose one of: {', '.join(sorted(OBJECTIVES))}")
    _check_args("objective", name, OBJECTIVES[name], loss_config.args, OBJECTIVE_RESERVED)
    for term, spec in loss_config.terms.items():
        check_term(term, {k: v for k, v in spec.items() if k != "weight"} if isinstance(spec, dict) else {})


def build_term(name: str, options: dict[str, Any] | None = None):
    """Instantiate a registered ``LossTerm`` with its options."""
    options = dict(options or {})
    cls = check_term(name, options)
    try:
        return cls(**options)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"loss term '{name}' with options {options}: {exc}") from None


def build_objective(loss_config, in_channels: int, scale: int, total_iterations: int = 1):
    """Instantiate ``loss_config.objective`` (a ``pipeline.config.LossConfig``)."""
    import pipeline.objectives  # noqa: F401

    name = loss_config.objective
    if name not in OBJECTIVES:
        raise ConfigError(f"unknown objective '{name}'; choose one of: {', '.join(sorted(OBJECTIVES))}")
    cls = OBJECTIVES[name]
    _check_args("objective", name, cls, loss_config.args, OBJECTIVE_RESERVED)
    try:
        return cls(in_channels=in_channels, scale=scale, terms=loss_config.terms,
                   total_iterations=total_iterations, **loss_config.args)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"objective '{name}' with args {loss_config.args}: {exc}") from None
