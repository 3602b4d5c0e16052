"""The README's configuration reference is the schema's, so it cannot drift."""

from pathlib import Path

from pipeline.config_reference import BEGIN, END, config_reference

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_configuration_reference_matches_schema():
    text = README.read_text()
    start, stop = text.index(BEGIN), text.index(END) + len(END)
    assert text[start:stop] == config_reference(), "run: python -m pipeline config --reference, paste into README.md"


def test_reference_lists_every_leaf_key():
    table = config_reference()
    for key in ("train.lr", "sweep.scheduler.grace_period", "prepare.source.kind", "tracking.uri"):
        assert f"`{key}`" in table
