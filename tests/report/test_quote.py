"""docs/results.md quotes generated reports between markers, never hand-typed numbers."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.errors import PipelineError
from pipeline.report.quote import BEGIN, END, update_doc

DOC = Path(__file__).resolve().parents[2] / "docs" / "results.md"


def test_update_replaces_only_the_quoted_block_and_demotes_headings(tmp_path):
    results = tmp_path / "results"
    results.mkdir()
    (results / "claims.md").write_text("# Claims\n\nGenerated on 2026-11-30 from commit `abc`.\n\n## 1. X\n- a\n")
    (results / "leaderboard.md").write_text("# Leaderboard\n\n| a |\n")
    doc = tmp_path / "results.md"
    doc.write_text(f"intro\n{BEGIN}\nold numbers 12.34\n{END}\noutro\n")
    update_doc(doc, results, "make repro")
    text = doc.read_text()
    assert text.startswith("intro\n" + BEGIN) and text.endswith(END + "\noutro\n")
    assert "12.34" not in text and "### Claims" in text and "#### 1. X" in text and "### Leaderboard" in text
    assert "Produced by `make repro`" in text and "Generated on 2026-11-30 from commit `abc`." in text
    with pytest.raises(PipelineError, match="has no claims.md, leaderboard.md; run the evaluate stage"):
        update_doc(doc, tmp_path / "empty", "make repro")


def test_the_shipped_results_doc_quotes_a_named_run():
    text = DOC.read_text()
    block = text[text.index(BEGIN):text.index(END)]
    assert "Produced by `" in block and "Generated on " in block and " from commit `" in block


def test_the_summary_is_quoted_between_its_own_markers_without_its_heading(tmp_path):
    from pipeline.report.quote import SUMMARY_BEGIN, SUMMARY_END

    results = tmp_path / "results"
    results.mkdir()
    (results / "summary.md").write_text("## The answer across benchmarks\n\n| grad2 | +0.07 |\n\nGenerated on X.\n")
    doc = tmp_path / "README.md"
    doc.write_text(f"## What the study found\n\n{SUMMARY_BEGIN}\nold 1.23\n{SUMMARY_END}\nmore\n")
    update_doc(doc, results, "make repro")
    text = doc.read_text()
    assert "old 1.23" not in text and "The answer across benchmarks" not in text
    produced = f"Produced by `make repro` (`{results / 'summary.md'}`, unedited):"
    assert f"{SUMMARY_BEGIN}\n\n{produced}\n\n| grad2 | +0.07 |" in text
    assert text.endswith(f"Generated on X.\n\n{SUMMARY_END}\nmore\n")
    with pytest.raises(PipelineError, match="has no summary.md"):
        update_doc(doc, tmp_path / "empty", "make repro")


def test_the_readme_and_results_doc_carry_the_summary_markers():
    from pipeline.report.quote import DOCS, SUMMARY_BEGIN, SUMMARY_END

    root = Path(__file__).resolve().parents[2]
    for doc in DOCS:
        text = (root / doc).read_text()
        assert text.count(SUMMARY_BEGIN) == 1 and text.count(SUMMARY_END) == 1, doc
