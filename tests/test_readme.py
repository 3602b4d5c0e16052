"""The README is a tested front door: its code map, stage table, links and examples are real.

The configuration reference in docs/configuration.md is the schema's, so it cannot drift.
"""

import re
from pathlib import Path

import pytest
import yaml

from pipeline.config_reference import BEGIN, END, config_reference, write_reference
from pipeline.errors import PipelineError

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
CONFIGURATION = DOCS / "configuration.md"
README_MAX_LINES = 300


def _section(text: str, heading: str) -> str:
    """The body of the ``## heading`` section, up to the next ``## `` heading."""
    start = text.index(f"\n## {heading}\n")
    stop = text.find("\n## ", start + 1)
    return text[start:stop if stop >= 0 else len(text)]


def test_configuration_reference_matches_schema():
    text = CONFIGURATION.read_text()
    start, stop = text.index(BEGIN), text.index(END) + len(END)
    assert text[start:stop] == config_reference(), "run: python -m pipeline config --reference --write"


def test_reference_lists_every_leaf_key():
    table = config_reference()
    for key in ("train.lr", "sweep.scheduler.grace_period", "prepare.source.kind", "tracking.uri"):
        assert f"`{key}`" in table


def test_write_reference_replaces_only_the_block(tmp_path):
    page = tmp_path / "page.md"
    page.write_text(f"before\n{BEGIN}\n| stale |\n{END}\nafter\n")
    assert write_reference(page) is True
    assert page.read_text() == f"before\n{config_reference()}\nafter\n"
    assert write_reference(page) is False  # a second write changes nothing


def test_write_reference_without_markers_names_them(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("no table here\n")
    with pytest.raises(PipelineError, match="config-reference:begin"):
        write_reference(page)
    assert page.read_text() == "no table here\n"


def test_cli_writes_the_reference_to_docs_by_default(tmp_path, monkeypatch, capsys):
    from pipeline.cli import main

    (tmp_path / "docs").mkdir()
    target = tmp_path / "docs" / "configuration.md"
    target.write_text(f"# x\n{BEGIN}\n{END}\n")
    monkeypatch.chdir(tmp_path)
    assert main(["config", "--reference", "--write"]) == 0
    assert target.read_text() == f"# x\n{config_reference()}\n"
    assert "docs/configuration.md: updated" in capsys.readouterr().out


def test_readme_stays_a_front_door():
    lines = len(README.read_text().splitlines())
    assert lines <= README_MAX_LINES, f"README.md has {lines} lines; move detail into docs/<topic>.md"


def test_code_map_names_only_files_that_exist():
    text = README.read_text()
    block = text[text.index("<!-- code-map:begin"):text.index("<!-- code-map:end -->")]
    paths = re.findall(r"(?<![\w/.-])((?:pipeline|stages|bench|tools|tests|docs)/[\w/.-]*|[\w-]+\.yaml)", block)
    assert "pipeline/train/loop.py" in paths and "params.yaml" in paths and len(paths) >= 12
    missing = [p for p in paths if not (ROOT / p.rstrip(".")).exists()]
    assert not missing, f"the README's code map names paths that do not exist: {missing}"


def test_stage_table_lists_the_params_of_dvc_yaml():
    rows = [line for line in _section(README.read_text(), "The pipeline (DVC)").splitlines()
            if line.startswith("| ") and not line.startswith(("| stage", "| ---"))]
    table = {}
    for row in rows:
        stage, params = [cell.strip() for cell in row.strip("|").split("|")][:2]
        table[stage] = re.findall(r"`([^`]+)`", params)
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    assert table == {name: stage["params"] for name, stage in stages.items()}


def test_every_docs_page_is_in_the_layout_and_linked():
    text = README.read_text()
    layout, links = _section(text, "Project layout"), _section(text, "Documentation")
    for page in sorted(DOCS.glob("*.md")):
        assert page.name in layout, f"README 'Project layout' does not name docs/{page.name}"
        assert f"](docs/{page.name})" in links, f"README 'Documentation' does not link docs/{page.name}"


@pytest.mark.parametrize("page", [README, *sorted(DOCS.glob("*.md"))], ids=lambda p: p.name)
def test_relative_links_resolve(page):
    targets = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text())
    broken = [t for t in targets if "://" not in t and not (page.parent / t).exists()]
    assert not broken, f"{page.name} links to missing files: {broken}"


def test_worked_example_loss_registers_and_trains(monkeypatch):
    """The 'Adding a loss' example in docs/extending.md is real code: it registers and gives gradients."""
    import torch

    from pipeline.objectives import registry

    text = (DOCS / "extending.md").read_text()
    start = text.index("# pipeline/objectives/edge_loss.py")
    code = text[start:text.index("```", start)]
    monkeypatch.setattr(registry, "TERMS", dict(registry.TERMS))
    exec(compile(code, "edge_loss.py", "exec"), {"__name__": "edge_loss"})
    term = registry.build_term("edge", {"scale": 2.0})
    sr = torch.rand(1, 3, 8, 8, requires_grad=True)
    hr = torch.rand(1, 3, 8, 8)
    value = term(sr, hr)
    value.backward()
    assert value > 0 and torch.isfinite(sr.grad).all()
    assert term(hr, hr) == 0
