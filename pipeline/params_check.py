"""Params checked against the registries as soon as they are loaded.

The schema (``pipeline.config``) knows types and ranges but not which networks, objectives and
loss terms exist; this checks ``model.name``/``model.args``, ``loss.objective``/``loss.args`` and
every ``loss.terms`` entry and its options, for the params and for each sweep objective's fragment,
and that ``evaluate.decodes`` asks each swept objective only for decodes it has, without building
anything. So ``config``, ``dvc exp run -S`` and a sweep fail in one sentence
before any work starts.
"""

from __future__ import annotations

from pipeline.config import Params, decode_row
from pipeline.errors import ConfigError
from pipeline.models.registry import check_model
from pipeline.objectives.registry import OBJECTIVES, check_loss
from pipeline.tune.space import SearchSpace, TrialChoice


def check_registries(params: Params) -> None:
    """Raise a ``ConfigError`` naming the first unknown name or argument and where it is set."""
    _check(params, "params")
    space = SearchSpace(params.sweep)
    for name in space.objectives:
        _check(space.trial_params(params, TrialChoice(name, {}, 0)), f"sweep.objectives.{name}")
    for name, decodes in params.evaluate.decodes.items():
        if name not in space.objectives:  # not swept (a smaller study, or sweep.only): no models to decode
            continue
        kind = space.trial_params(params, TrialChoice(name, {}, 0)).loss.objective  # registered: checked above
        known = OBJECTIVES[kind].decodes
        for decode in decodes:
            if decode not in known:
                raise ConfigError(f"evaluate.decodes.{name}: '{decode}' is not a decode of objective '{kind}' (it has "
                                  f"{', '.join(known) or 'only its own'}); fix it in params.yaml or with --set")
            if decode_row(name, decode) in space.objectives:
                raise ConfigError(f"evaluate.decodes.{name}: the row '{decode_row(name, decode)}' of this decode has "
                                  "the name of a sweep objective; rename that objective")


def _check(params: Params, where: str) -> None:
    try:
        check_model(params.model.name, params.model.args)
        check_loss(params.loss)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}; fix it in params.yaml or with --set") from None
