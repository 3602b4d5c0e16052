"""docs/options.md is read from the registered constructors, and every option has a meaning."""

import inspect
from pathlib import Path

import pytest

import pipeline.models  # noqa: F401  (registers every network)
import pipeline.objectives  # noqa: F401  (registers every loss)

from pipeline.models.registry import MODELS
from pipeline.objectives.registry import OBJECTIVE_RESERVED, OBJECTIVES, TERMS
from pipeline.options_reference import (BEGIN, END, MODEL_RESERVED, _option_meanings, class_options,
                                        options_reference, write_options)

OPTIONS = Path(__file__).resolve().parents[1] / "docs" / "options.md"
REGISTERED = ([(f"objective {n}", c, OBJECTIVE_RESERVED) for n, c in OBJECTIVES.items()]
              + [(f"term {n}", c, set()) for n, c in TERMS.items()]
              + [(f"model {n}", c, MODEL_RESERVED) for n, c in MODELS.items()])


def test_options_page_matches_the_constructors():
    text = OPTIONS.read_text()
    start, stop = text.index(BEGIN), text.index(END) + len(END)
    assert text[start:stop] == options_reference(), "run: python -m pipeline config --options --write"


@pytest.mark.parametrize("what, cls, reserved", REGISTERED, ids=[r[0] for r in REGISTERED])
def test_every_option_is_a_constructor_argument_with_a_meaning(what, cls, reserved):
    arguments = set(inspect.signature(cls.__init__).parameters) - {"self"} - reserved
    rows = class_options(cls, reserved)
    assert [row[0] for row in rows] == [a for a in inspect.signature(cls.__init__).parameters if a in arguments]
    meanings = _option_meanings(cls)
    assert set(meanings) <= arguments, f"{what}: its Options: block names no argument {set(meanings) - arguments}"
    assert set(meanings) == arguments, f"{what}: add to its docstring's Options: {sorted(arguments - set(meanings))}"


def test_reference_shows_types_and_defaults_as_the_constructor_has_them():
    table = options_reference()
    assert "| `eps` | float | `0.001` | the ``eps`` inside the square root. |" in table  # charbonnier
    assert '| `distance` | "l1" \\| "l2" | `"l1"` |' in table  # grad2: a Literal, its | escaped
    assert "#### `huber` / `smooth_l1`" in table and "#### `l1`\n\n" in table


def test_option_meanings_join_continuation_lines_and_shared_names():
    class Example:
        """Summary.

        Options:
            a, b: first line
                continued.
            c: third.

        After the block.
        """

    assert _option_meanings(Example) == {"a": "first line continued.", "b": "first line continued.", "c": "third."}


def test_write_options_keeps_the_page_around_the_block(tmp_path):
    page = tmp_path / "options.md"
    page.write_text(f"intro\n{BEGIN}\n{END}\noutro\n")
    assert write_options(page) is True
    assert page.read_text() == f"intro\n{options_reference()}\noutro\n"


def test_cli_prints_the_options_reference(capsys):
    from pipeline.cli import main

    assert main(["config", "--options"]) == 0
    assert capsys.readouterr().out == options_reference() + "\n"
