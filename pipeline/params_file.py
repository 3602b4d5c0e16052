"""The params file read into ``Params`` (``pipeline.config``, the schema): ``find_params`` finds the
project's ``params.yaml``, ``load_params`` reads it, applies ``--set`` overrides (``dvc exp run -S``
syntax), validates it and resolves its relative paths against the project folder; ``validate``
turns a raw mapping into ``Params``, its first problem into one ``ConfigError`` sentence.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from pipeline.config import Params
from pipeline.errors import ConfigError
from pipeline.params_yaml import read_yaml

PARAMS_FILE = "params.yaml"
REMOVE = object()  # the value of a ``~key`` override


def parse_override(text: str) -> tuple[list[str], Any]:
    """``train.lr=2e-4`` -> (["train", "lr"], 0.0002); the value is read as YAML.

    As in ``dvc exp run -S`` (Hydra's syntax), ``+key=value`` and ``++key=value`` set a key as well
    and ``~key`` (or ``~key=value``) removes one; a removal has the value ``REMOVE``.
    """
    remove = text.startswith("~")
    body = text[1:] if remove else text.removeprefix("++").removeprefix("+")
    if "=" not in body and not remove:
        raise ConfigError(f"override '{text}' is not of the form key.path=value; write e.g. train.lr=2e-4")
    key, raw = body.split("=", 1) if "=" in body else (body, "")
    parts = [p for p in key.strip().split(".") if p]
    if not parts:
        raise ConfigError(f"override '{text}' has an empty key; write e.g. train.lr=2e-4")
    if remove:
        return parts, REMOVE
    return parts, read_yaml(raw, f"override '{text}': the value") if raw.strip() else None


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Set (or remove) each ``key.path=value`` in a copy of ``data``, creating inner mappings as needed."""
    data = copy.deepcopy(data)
    for text in overrides:
        parts, value = parse_override(text)
        node = data
        for part in parts[:-1]:
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            elif not isinstance(child, dict):
                raise ConfigError(f"override '{text}': '{part}' is a value, not a section")
            node = child
        if value is REMOVE:
            node.pop(parts[-1], None)
        else:
            node[parts[-1]] = value
    return data


def _describe(error: dict[str, Any], source: str) -> str:
    where = ".".join(str(p) for p in error["loc"] if not str(p).startswith("function-after"))
    kind = error["type"]
    if kind == "extra_forbidden":
        parent = _model_at(error["loc"][:-1])
        allowed = ", ".join(sorted(parent.model_fields)) if parent else "see docs/configuration.md"
        return f"{source}: unknown key '{where}'; allowed keys here: {allowed}."
    got = error.get("input")
    message = error["msg"].removeprefix("Value error, ")
    if error["loc"][-1:] == ("[key]",):  # a name under a section: say which section
        section = ".".join(str(p) for p in error["loc"][:-2])
        return f"{source}: a name under '{section}': {message}; rename it"
    if not error["loc"] or message.startswith(f"{where}."):  # a rule across keys names them and the fix
        return f"{source}: {message}"
    shown = f" (got {got!r})" if not isinstance(got, (dict, list)) and repr(got) not in message else ""
    return f"{source}: '{where}': {message}{shown}; fix it in params.yaml or with --set {where}=..."


def _model_at(loc: tuple[Any, ...]) -> type[BaseModel] | None:
    model: type[BaseModel] = Params
    for part in loc:
        field = model.model_fields.get(str(part))
        annotation = getattr(field, "annotation", None)
        candidates = [annotation, *getattr(annotation, "__args__", ())]
        nested = [c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)]
        if not nested:
            return None
        model = nested[0]
    return model


def validate(data: dict[str, Any], source: str = "params") -> Params:
    """Validate a raw mapping; the first problem becomes one ``ConfigError`` sentence."""
    try:
        return Params.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_describe(exc.errors()[0], source)) from None


def find_params(start: Path | None = None) -> Path:
    """The ``params.yaml`` of the project a command is run in: in ``start`` (default: the working
    directory) or the nearest folder above it, as ``dvc`` finds its root."""
    start = (start or Path.cwd()).resolve()
    for folder in (start, *start.parents):
        if (folder / PARAMS_FILE).is_file():
            return folder / PARAMS_FILE
    raise ConfigError(f"'{start}' is not inside a project: neither it nor a folder above it holds {PARAMS_FILE}; "
                      "run the command in the project folder or pass --params PATH")


def load_params(path: Path | str | None = None, overrides: list[str] | None = None, root: Path | None = None) -> Params:
    """Read ``params.yaml`` (default: the project the command is run in, ``find_params``), apply
    ``--set`` overrides, validate, and resolve relative paths against ``root`` (default: the file's
    folder, the project's)."""
    path = Path(path) if path else find_params()
    if not path.is_file():
        raise ConfigError(f"params file '{path}' does not exist; pass --params PATH or run from the project folder")
    try:
        text = path.read_text()
    except UnicodeDecodeError as exc:
        raise ConfigError(f"'{path}' is not a UTF-8 text file ({exc.reason} at byte {exc.start}); "
                          "pass a YAML params file") from None
    data = read_yaml(text, f"'{path}'") or {}
    if not isinstance(data, dict):
        raise ConfigError(f"'{path}' must hold a mapping of sections (seed, prepare, train, ...)")
    data = apply_overrides(data, overrides or [])
    params = validate(data, source=path.name).resolved(root or path.resolve().parent)
    _check_folders(params, path.name)
    return params


def _check_folders(params: Params, source: str) -> None:
    """Folder sources must exist at load time, unless marked ``optional``."""
    sources = {"prepare.source": params.prepare.source}
    sources.update({f"prepare.benchmarks.{name}": src for name, src in params.prepare.benchmarks.items()})
    for key, src in sources.items():
        if src.kind == "folder" and not src.optional and not src.path.is_dir():
            raise ConfigError(f"{source}: '{key}.path': folder '{src.path}' does not exist; "
                              f"fix the path or set {key}.optional=true")
