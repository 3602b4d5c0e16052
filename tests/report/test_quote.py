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
