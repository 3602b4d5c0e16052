"""Names that say what ran: where an objective's settings depart from its paper's, and the switch back.

CS, FCS and fine-grained start their class heads *ordered* by default (this project's addition,
``pipeline.objectives.ordered_head``; the papers keep PyTorch's plain start), fine-grained decodes by
expectation (the paper: anchor + offset), FCS weights its low-pass term to balance the two terms (the
paper: an unweighted sum), and the default study's TLW weighting net is narrower than the paper's 64
features. ``label`` names a row by its departures, e.g. ``cs (ordered head)``; ``paper_switches`` gives
the ``dvc exp run -S`` overrides that restore the paper's setting (all of them: ``params-paper.yaml``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

DECODE_SEPARATOR = "@"  # evaluate.decodes rows: '<objective>@<decode>'


@dataclass(frozen=True)
class Departure:
    """``loss.args.<arg>`` of the ``kinds`` objectives: the ``paper``'s value, this project's ``default``,
    and the ``template`` that names a value (``{} head``)."""

    kinds: tuple[str, ...]
    arg: str
    paper: Any
    default: Any
    template: str

    def describe(self, value: Any) -> str:
        return self.template.format(_value(value))


DEPARTURES = (
    Departure(("cs", "fcs", "fine_grained"), "init", "plain", "ordered", "{} head"),
    Departure(("fine_grained",), "decode", "anchor", "expectation", "{} decode"),
    Departure(("fcs",), "low_weight", 1.0, "balanced", "low-pass weight {}"),
    Departure(("tlw",), "features", 64, 64, "{}-feature weighting net"),
)


def _departures(method: str, loss: dict[str, Any]) -> list[tuple[Departure, Any]]:
    args = dict(loss.get("args") or {})
    if DECODE_SEPARATOR in method:
        args["decode"] = method.split(DECODE_SEPARATOR, 1)[1]
    found = []
    for departure in DEPARTURES:
        value = args.get(departure.arg, departure.default)
        if loss.get("objective") in departure.kinds and value != departure.paper:
            found.append((departure, value))
    return found


def label(method: str, loss: dict[str, Any]) -> str:
    """``method`` with its departures from the paper in brackets: ``cs (ordered head)``."""
    parts = [departure.describe(value) for departure, value in _departures(method, loss)]
    return f"{method} ({', '.join(parts)})" if parts else method


def paper_switches(method: str, loss: dict[str, Any]) -> list[str]:
    """The ``-S`` overrides that give ``method`` its paper's settings (none for a row of another decode)."""
    name = method.split(DECODE_SEPARATOR, 1)[0]
    return [f"-S 'sweep.objectives.{name}.loss.args.{departure.arg}={departure.paper}'"
            for departure, _ in _departures(method, loss)
            if not (DECODE_SEPARATOR in method and departure.arg == "decode")]


def settings(loss: dict[str, Any], searched: dict[str, Any]) -> str:
    """The loss an objective trained with, in one cell: ``cs init=ordered decode=expectation``, its
    terms' weights, and the values the sweep searched (``searched: loss.terms.grad2=0.1``)."""
    args = " ".join(f"{key}={_value(value)}" for key, value in sorted((loss.get("args") or {}).items()))
    terms = " + ".join(f"{weight:g}·{term}" for term, weight in (loss.get("terms") or {}).items())
    parts = [f"{loss.get('objective')}" + (f" {args}" if args else ""), terms]
    if searched:
        parts.append("searched: " + ", ".join(f"{key}={_value(value)}" for key, value in sorted(searched.items())))
    return "; ".join(part for part in parts if part)


def _value(value: Any) -> str:
    if isinstance(value, dict):
        return "{" + ", ".join(f"{key}: {_value(item)}" for key, item in value.items()) + "}"
    return f"{value:g}" if isinstance(value, float) else str(value)
