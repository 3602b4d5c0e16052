"""Two runs' verdicts.json side by side: the verdicts of each protocol, the changed ones marked."""

from __future__ import annotations

import copy
import json
from pathlib import Path

from pipeline.report.protocols import BEGIN, END, compare_protocols, main

DOC = Path(__file__).resolve().parents[2] / "docs" / "results.md"


def _delta(mean: float, low: float, high: float, verdict: str) -> dict:
    return {"mean": mean, "low": low, "high": high, "images": 19, "seeds": 2, "verdict": verdict}


ITERATIONS = {
    "format": 1,
    "budget": {"by": "iterations", "flops": None, "iterations": {"cs": 600, "grad2": 600, "l1": 600},
               "text": "Budget: equal iterations (600 per model)."},
    "scales": {"x2": {"reference": "l1", "benchmarks": ["Set14", "Set5"], "objectives": {
        "cs": {"psnr": _delta(0.26, 0.10, 0.51, "better"), "ssim": _delta(0.0012, -0.0003, 0.0025, "not established")},
        "grad2": {"psnr": _delta(0.10, 0.04, 0.19, "better")}}}},
}
FLOPS = {
    "format": 1,
    "budget": {"by": "flops", "flops": 2054356992000.0, "iterations": {"cs": 339, "grad2": 598, "l1": 600},
               "text": "Budget: equal training FLOPs (2.05e12 per model; iterations per objective: cs 339, "
                       "grad2 598, l1 600)."},
    "scales": {"x2": {"reference": "l1", "benchmarks": ["Set14", "Set5"], "objectives": {
        "cs": {"psnr": _delta(0.05, -0.08, 0.19, "not established"),
               "ssim": _delta(0.0004, -0.0010, 0.0016, "not established")},
        "grad2": {"psnr": _delta(0.11, 0.05, 0.18, "better")}}}},
}
TABLE = """\
- **A**: Budget: equal iterations (600 per model).
- **B**: Budget: equal training FLOPs (2.05e12 per model; iterations per objective: cs 339, grad2 598, l1 600).

Each objective minus `l1` at x2, pooled over the images of Set14, Set5 and the training seeds: mean [95% interval] \
verdict.

| objective | metric | A: equal iterations | B: equal training FLOPs | changed |
|---|---|---|---|---|
| cs | psnr | +0.26 [+0.10, +0.51] better | +0.05 [-0.08, +0.19] not established | **yes** |
| cs | ssim | +0.0012 [-0.0003, +0.0025] not established | +0.0004 [-0.0010, +0.0016] not established | no |
| grad2 | psnr | +0.10 [+0.04, +0.19] better | +0.11 [+0.05, +0.18] better | no |

**Verdicts that changed from A to B:** 1 of 3: cs psnr at x2 (better → not established)."""


def _write(folder: Path, name: str, verdicts: dict) -> Path:
    path = folder / name
    path.write_text(json.dumps(verdicts))
    return path


def test_the_table_holds_both_protocols_verdicts_and_marks_the_changed_one():
    assert compare_protocols(ITERATIONS, FLOPS) == TABLE


def test_the_command_prints_the_table(tmp_path, capsys):
    assert main([str(_write(tmp_path, "a.json", ITERATIONS)), str(_write(tmp_path, "b.json", FLOPS))]) == 0
    assert capsys.readouterr().out == TABLE + "\n"


def test_an_objective_measured_in_one_run_only_counts_as_changed():
    other = copy.deepcopy(FLOPS)
    del other["scales"]["x2"]["objectives"]["grad2"]
    text = compare_protocols(ITERATIONS, other)
    assert "| grad2 | psnr | +0.10 [+0.04, +0.19] better | – | **yes** |" in text
    assert text.endswith("2 of 3: cs psnr at x2 (better → not established); grad2 psnr at x2 (better → –).")


def test_the_doc_block_is_replaced_and_the_rest_kept(tmp_path):
    doc = tmp_path / "results.md"
    doc.write_text(f"intro\n\n{BEGIN}\n\nNot generated yet.\n\n{END}\n\noutro\n")
    a, b = _write(tmp_path, "a.json", ITERATIONS), _write(tmp_path, "b.json", FLOPS)
    assert main([str(a), str(b), "--doc", str(doc), "--command", "make repro, then dvc exp run"]) == 0
    produced = f"Produced by `python -m pipeline.report.protocols {a} {b}` from make repro, then dvc exp run, unedited:"
    assert doc.read_text() == f"intro\n\n{BEGIN}\n\n{produced}\n\n{TABLE}\n\n{END}\n\noutro\n"


def test_the_shipped_results_doc_has_the_block_for_the_equal_flops_comparison():
    text = DOC.read_text()
    assert text.index("## Equal training FLOPs") < text.index(BEGIN) < text.index(END)
    assert "dvc exp run -S train.budget.by=flops -S train.budget.flops=" in text
    assert "python -m pipeline.report.protocols /tmp/verdicts-iterations.json results/verdicts.json" in text


def test_bad_inputs_exit_2_with_one_sentence_and_leave_the_doc(tmp_path, capsys):
    a = _write(tmp_path, "a.json", ITERATIONS)
    bicubic = copy.deepcopy(FLOPS)
    bicubic["scales"]["x2"]["reference"] = "bicubic"
    doc = tmp_path / "results.md"
    doc.write_text(f"{BEGIN}\nkept\n{END}\n")
    cases = [([str(a), str(tmp_path / "missing.json")], "does not exist; run the evaluate stage"),
             ([str(a), str(_write(tmp_path, "old.json", {"scales": {}}))], "is not a verdicts.json of format 1"),
             ([str(a), str(_write(tmp_path, "bicubic.json", bicubic)), "--doc", str(doc)],
              "at x2 A compares with `l1` but B with `bicubic`"),
             ([str(a), str(a), "--doc", str(tmp_path / "plain.md")], "has no protocols markers")]
    for argv, message in cases:
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and message in err and err.count("\n") == 1 and "Traceback" not in err
    assert doc.read_text() == f"{BEGIN}\nkept\n{END}\n"
