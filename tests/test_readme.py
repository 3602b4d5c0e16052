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


def test_readme_worked_example_loss_registers_and_trains(tmp_path, monkeypatch):
    """The 'Adding a loss' example in the README is real code: it registers and gives gradients."""
    import torch

    from pipeline.objectives import registry

    text = README.read_text()
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
