"""The sweep's search space: ``sweep.objectives`` and ``sweep.space`` as Ray Tune and Optuna
spaces, and one trial's configuration back to the ``Params`` it trains with.

``sweep.objectives`` maps a name to a params fragment merged onto the base params: sections merge
key by key, free-form values (``loss.args``, ``loss.terms``, ``model.args``, lists) are replaced
whole; ``sweep.only`` picks some of them (``dvc exp run -S`` merges mappings, so it cannot drop one). ``sweep.space`` maps an objective name to ``{dotted params key: form}``, the forms being
``{choice: [...]}``, ``{grid: [...]}`` (every value is tried), ``{uniform: [a, b]}``,
``{loguniform: [a, b]}`` (``0 < a < b``) and ``{randint: [a, b]}`` (integers ``a..b``, both
included). Under ``search: grid`` a ``choice`` is tried exhaustively too.

A trial's Tune config: ``variant`` = ``{"objective", "grid": {key: value}}`` (grid search over the
objectives and each one's grid values), ``seed`` = ``0..seeds-1`` (grid search; sampled values are
shared by the seeds of a configuration) and ``space`` = ``{objective: {key: sampled value}}``, of
which a trial reads its own objective's. Optuna's define-by-run space suggests ``objective`` then
that objective's keys (as ``space/<objective>/<key>``); its repeats carry the seed index in
``__trial_index__``.
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import product
from types import UnionType
from typing import Any, Union, get_args, get_origin

import numpy as np
from pydantic import BaseModel

from pipeline.config import Params, SweepConfig
from pipeline.errors import ConfigError
from pipeline.models.registry import build_model
from pipeline.objectives.registry import build_objective
from pipeline.params_file import validate
from pipeline.tune.cost import trial_cost

FORMS = ("choice", "grid", "uniform", "loguniform", "randint")
SAMPLED_FORMS = ("choice", "uniform", "loguniform", "randint")
REPEAT_INDEX = "__trial_index__"  # ray.tune.search.repeater.TRIAL_INDEX
# Keys a restored checkpoint must agree on (pipeline.train.resume.RESUME_MUST_MATCH): PBT cannot mutate them.
FIXED_ON_RESUME = ("model", "loss", "train.scale")


@dataclass(frozen=True)
class Dimension:
    """One searched params key: ``form`` is one of ``FORMS``; ``values`` the list or the ``[a, b]`` bounds."""

    key: str
    form: str
    values: tuple[Any, ...]

    @property
    def exhaustive(self) -> bool:
        return self.form == "grid"

    def representatives(self) -> list[Any]:
        """Values that show whether the key is valid: every listed value, or both bounds."""
        return list(self.values)

    def tune_domain(self) -> Any:
        """The Ray Tune sampling domain of a sampled form."""
        from ray import tune

        if self.form == "choice":
            return tune.choice(list(self.values))
        low, high = self.values
        if self.form == "randint":
            return tune.randint(low, high + 1)  # Tune excludes the upper bound
        return tune.loguniform(low, high) if self.form == "loguniform" else tune.uniform(low, high)

    def suggest(self, trial: Any, name: str) -> Any:
        """Ask an ``optuna.Trial`` for a value (grids become categorical choices)."""
        if self.form in ("choice", "grid"):
            return trial.suggest_categorical(name, list(self.values))
        low, high = self.values
        if self.form == "randint":
            return trial.suggest_int(name, low, high)
        return trial.suggest_float(name, low, high, log=self.form == "loguniform")


@dataclass(frozen=True)
class TrialChoice:
    """What one trial trains: an objective, values for its dotted keys, and the seed index."""

    objective: str
    values: dict[str, Any]
    seed_index: int

    @property
    def configuration(self) -> str:
        """Identifies the configuration, the same for all its seeds."""
        return json.dumps({"objective": self.objective, "values": self.values}, sort_keys=True)


class SearchSpace:
    """``sweep.objectives`` x ``sweep.space``, checked for form; ``check_against`` checks the keys."""

    def __init__(self, sweep: SweepConfig):
        self.search = sweep.search
        self.seeds = sweep.seeds
        declared = dict(sweep.objectives)
        if not declared:
            raise ConfigError("sweep.objectives is empty; name at least one, e.g. {l1: {loss: {terms: {l1: 1.0}}}}")
        for key, names in (("sweep.space", sorted(sweep.space)), ("sweep.only", sweep.only or [])):
            unknown = [name for name in names if name not in declared]
            if unknown:
                raise ConfigError(f"{key} names objective(s) {', '.join(unknown)} that sweep.objectives lacks; "
                                  f"use one of: {', '.join(declared)}")
        if sweep.only == []:
            raise ConfigError("sweep.only is empty; name objectives to run, or set it to null to run all of them")
        self.objectives = {name: fragment for name, fragment in declared.items()
                           if sweep.only is None or name in sweep.only}
        self.dimensions = {name: [_dimension(name, key, spec, sweep.search)
                                  for key, spec in sweep.space.get(name, {}).items()] for name in self.objectives}

    def costs(self, base: Params) -> dict[str, float]:
        """Objective name -> the relative cost of one of its trials: ``pipeline.tune.cost.trial_cost`` of its
        ``loss.objective`` times its training iterations."""
        found = {}
        for name in self.objectives:
            params = self.trial_params(base, TrialChoice(name, {}, 0))
            found[name] = trial_cost(params.loss.objective) * params.train.iterations
        return found

    def grid_variants(self, costs: dict[str, float] | None = None) -> list[dict[str, Any]]:
        """``{"objective", "grid"}`` for each objective and each combination of its exhaustive keys; the
        objectives' trials most expensive first when ``costs`` are given (Tune starts them in this order)."""
        variants = []
        names = sorted(self.dimensions, key=lambda name: -(costs or {}).get(name, 0.0))
        for name in names:
            dimensions = self.dimensions[name]
            grid = [d for d in dimensions if d.exhaustive]
            for combination in product(*(d.values for d in grid)):
                variants.append({"objective": name, "grid": {d.key: v for d, v in zip(grid, combination)}})
        return variants

    def tune_param_space(self, costs: dict[str, float] | None = None) -> dict[str, Any]:
        """The ``param_space`` for Tune's ``BasicVariantGenerator`` (see the module docstring), the most
        expensive objectives' trials first when ``costs`` are given."""
        from ray import tune

        return {"variant": tune.grid_search(self.grid_variants(costs)),
                "seed": tune.grid_search(list(range(self.seeds))),
                "space": {name: {d.key: d.tune_domain() for d in dimensions if not d.exhaustive}
                          for name, dimensions in self.dimensions.items()}}

    def optuna_space(self, trial: Any) -> None:
        """Optuna define-by-run: the objective first, then only that objective's keys."""
        name = trial.suggest_categorical("objective", list(self.objectives))
        for dimension in self.dimensions[name]:
            dimension.suggest(trial, f"space/{name}/{dimension.key}")

    def pbt_mutations(self) -> dict[str, Any]:
        """PBT's ``hyperparam_mutations``: the sampled keys, which a restored checkpoint allows to change."""
        for name, dimensions in self.dimensions.items():
            for dimension in dimensions:
                if any(dimension.key == part or dimension.key.startswith(f"{part}.") for part in FIXED_ON_RESUME):
                    raise ConfigError(f"sweep.space.{name}: PBT cannot mutate '{dimension.key}' (a checkpoint only "
                                      f"resumes with the same {', '.join(FIXED_ON_RESUME)}); search it with "
                                      "scheduler asha or fifo, or give PBT train.* keys such as train.lr")
        mutations = {name: {d.key: d.tune_domain() for d in dimensions if not d.exhaustive}
                     for name, dimensions in self.dimensions.items()}
        return {"space": {name: keys for name, keys in mutations.items() if keys}}

    def fragment(self, choice: TrialChoice) -> dict[str, Any]:
        """The objective's fragment with the trial's values set in: what reproduces the configuration."""
        fragment = copy.deepcopy(self.objectives[choice.objective])
        for key, value in choice.values.items():
            _set_dotted(fragment, key, value, f"sweep.space.{choice.objective}")
        return fragment

    def trial_params(self, base: Params, choice: TrialChoice) -> Params:
        """``base`` + the objective's fragment + the trial's values, seeded ``base.seed + seed_index``,
        validating ``sweep.reports`` times and picking ``best.pt`` by ``sweep.metric``/``sweep.mode``."""
        data = base.model_dump(mode="json")
        _merge(data, self.objectives[choice.objective], Params, f"sweep.objectives.{choice.objective}")
        for key, value in choice.values.items():
            _set_dotted(data, key, value, f"sweep.space.{choice.objective}")
        data["seed"] = base.seed + choice.seed_index
        train = data["train"]
        reports = base.sweep.reports
        if reports > train["iterations"]:
            raise ConfigError(f"sweep.reports {reports} is more than the {train['iterations']} training iterations of "
                              f"objective '{choice.objective}'; lower sweep.reports or raise train.iterations")
        train.update(val_every=train["iterations"] // reports, checkpoint_every=train["iterations"] // reports,
                     select_metric=base.sweep.metric, select_mode=base.sweep.mode, progress=False)
        where = f"sweep.objectives.{choice.objective}" + (f" with {choice.values}" if choice.values else "")
        return validate(data, source=where)

    def check_against(self, base: Params) -> int:
        """Build every objective's params (once per listed value or bound of each key) and its network and
        objective once, so a wrong key or value fails here, on the driver, naming itself. Returns the
        most validations a trial makes (the schedulers' ``max_t``)."""
        most = max(math.ceil(params.train.iterations / params.train.val_every)
                   for params in self.representative_params(base))
        for name, dimensions in self.dimensions.items():
            first = {d.key: d.representatives()[0] for d in dimensions}
            params = self.trial_params(base, TrialChoice(name, first, 0))
            try:
                net = build_model(params.model.name, params.train.scale, params.model.args)
                build_objective(params.loss, net.feature_channels, params.train.scale,
                                total_iterations=params.train.iterations)
            except ConfigError as exc:
                raise ConfigError(f"sweep.objectives.{name}{f' with {first}' if first else ''}: {exc}") from None
        return most

    def representative_params(self, base: Params) -> Iterator[Params]:
        """Each objective's params once per listed value or bound of each key (the others at their first)."""
        for name, dimensions in self.dimensions.items():
            first = {d.key: d.representatives()[0] for d in dimensions}
            for dimension in [None, *dimensions]:
                for value in dimension.representatives() if dimension else [None]:
                    values = {**first, dimension.key: value} if dimension else first
                    yield self.trial_params(base, TrialChoice(name, values, 0))

    def repeated_identically(self, num_samples: int) -> list[str]:
        """Objectives that ``num_samples`` > 1 trains several times with the same settings and seeds:
        the random and grid generators repeat the whole grid, and nothing of theirs is sampled."""
        if num_samples < 2 or self.search == "optuna":
            return []
        return [name for name, dimensions in self.dimensions.items() if all(d.exhaustive for d in dimensions)]

    def describe(self) -> dict[str, Any]:
        """The space as plain data (for the MLflow parent run and logs)."""
        return {name: {d.key: {d.form: list(d.values)} for d in dimensions}
                for name, dimensions in self.dimensions.items()}


def trial_choice(config: dict[str, Any]) -> TrialChoice:
    """Read a trial's Tune config (either layout in the module docstring)."""
    variant = config.get("variant") or {"objective": config["objective"], "grid": {}}
    objective = variant["objective"]
    values = {**variant["grid"], **config.get("space", {}).get(objective, {})}
    seed_index = config.get("seed", config.get(REPEAT_INDEX, 0))
    return TrialChoice(objective, {key: _plain(value) for key, value in sorted(values.items())}, int(seed_index))


def _dimension(objective: str, key: str, spec: Any, search: str) -> Dimension:
    where = f"sweep.space.{objective}.{key}"
    if not isinstance(spec, dict) or len(spec) != 1 or next(iter(spec)) not in FORMS:
        raise ConfigError(f"{where} must be a mapping with one form ({', '.join(FORMS)}), "
                          "e.g. {uniform: [0.1, 1.0]} or {choice: [8, 16]}")
    form, values = next(iter(spec.items()))
    if not isinstance(values, list) or not values:
        raise ConfigError(f"{where}: {form} needs a non-empty list, e.g. {{{form}: [1, 2]}}")
    if search == "grid" and form == "choice":
        form = "grid"
    if form in ("uniform", "loguniform", "randint"):
        if search == "grid":
            raise ConfigError(f"{where}: search 'grid' tries finite lists only; write {{grid: [...]}} or use "
                              "search random or optuna")
        if len(values) != 2 or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
            raise ConfigError(f"{where}: {form} needs two numbers [low, high], e.g. {{{form}: [1, 4]}}")
        low, high = values
        valid = {"uniform": low < high, "loguniform": 0 < low < high,
                 "randint": isinstance(low, int) and isinstance(high, int) and low < high}
        if not valid[form]:
            need = {"uniform": "low < high", "loguniform": "0 < low < high", "randint": "integers low < high"}[form]
            raise ConfigError(f"{where}: {form} needs {need} (got {values})")
    if search == "optuna" and form in ("choice", "grid") and not all(
            v is None or isinstance(v, (bool, int, float, str)) for v in values):
        raise ConfigError(f"{where}: Optuna chooses among numbers, strings and booleans only; list such values or "
                          "use search random")
    return Dimension(key, form, tuple(values))


def _plain(value: Any) -> Any:
    """numpy scalars (as Tune samples them) -> Python numbers, so params and JSON take them."""
    return value.item() if isinstance(value, np.generic) else value


def _section(model: type[BaseModel] | None, key: str) -> type[BaseModel] | None:
    """The schema section (a model class) at ``model.key``, None for a free-form value."""
    field = model.model_fields.get(key) if model is not None else None
    if field is None:
        return None
    annotation = field.annotation
    candidates = get_args(annotation) if get_origin(annotation) in (Union, UnionType) else (annotation,)
    sections = [c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)]
    return sections[0] if sections else None


def _merge(target: dict[str, Any], fragment: dict[str, Any], model: type[BaseModel] | None, where: str) -> None:
    """Merge ``fragment`` into ``target``: sections key by key, free-form values replaced whole."""
    if not isinstance(fragment, dict):
        raise ConfigError(f"{where} must be a mapping of params sections, e.g. {{loss: {{terms: {{l1: 1.0}}}}}}")
    for key, value in fragment.items():
        section = _section(model, key)
        if section is not None and isinstance(value, dict) and isinstance(target.get(key), dict):
            _merge(target[key], value, section, f"{where}.{key}")
        else:
            target[key] = copy.deepcopy(value)


def _set_dotted(data: dict[str, Any], key: str, value: Any, where: str) -> None:
    """Set ``data[a][b][c] = value`` for ``key`` 'a.b.c', creating missing mappings."""
    parts = key.split(".")
    node = data
    for index, part in enumerate(parts[:-1]):
        child = node.setdefault(part, {})
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            raise ConfigError(f"{where}: key '{key}' goes inside '{'.'.join(parts[:index + 1])}', which is a value, "
                              "not a section; fix the key")
        node = child
    node[parts[-1]] = copy.deepcopy(value)
