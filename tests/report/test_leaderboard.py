"""The leaderboard marks each column's best, shows unavailable metrics as such and links runs."""

from __future__ import annotations

from pipeline.report.leaderboard import render_leaderboard
from pipeline.report.metrics_file import ScoreTable


def _tree():
    table = ScoreTable()
    table.add("Set5", 2, "bicubic", {"psnr": 33.0, "ssim": 0.930, "lpips": 0.20})
    table.add("Set5", 2, "l1", {"psnr": 34.5, "ssim": 0.940, "lpips": 0.15, "decode_ms_per_mp": 0.5})
    table.add("Set5", 2, "l1", {"psnr": 34.3, "ssim": 0.938, "lpips": 0.16, "decode_ms_per_mp": 0.7})
    table.add("Set5", 2, "cs", {"psnr": 34.0, "ssim": 0.942, "lpips": 0.09, "decode_ms_per_mp": 90.0})
    table.add("Set5", 3, "bicubic", {"psnr": 30.0, "ssim": 0.87, "lpips": 0.30})
    return table.to_tree({})


def _rows(text: str, heading: str) -> dict[str, list[str]]:
    lines = text.split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0].splitlines()
    return {cells[0]: cells[1:] for cells in ([c.strip() for c in line.strip("|").split("|")]
                                              for line in lines if line.startswith("| ") and "objective" not in line)}


def test_each_columns_best_is_bold_and_only_it():
    text = render_leaderboard(_tree(), "statement", {"l1": "`run-l1`"}, ["a note"], {"l1": 2, "cs": 2})
    rows = _rows(text, "Set5 x2")
    assert list(rows) == ["bicubic", "cs", "l1"]
    bold = {name: [i for i, cell in enumerate(cells[:4]) if cell.startswith("**")] for name, cells in rows.items()}
    assert bold == {"bicubic": [], "cs": [1, 2], "l1": [0, 3]}
    assert rows["l1"][0] == "**34.40 ± 0.14**"
    assert rows["bicubic"][3] == "–"
    assert rows["l1"][4:] == ["2", "`run-l1`"] and rows["cs"][5] == "–"


def test_a_scale_without_models_says_so_and_shows_only_bicubic():
    text = render_leaderboard(_tree(), "statement", {}, [], {"l1": 2, "cs": 2})
    x3 = text.split("## Set5 x3\n", 1)[1]
    assert "No objective was trained at x3 (models exist at x2); only the bicubic baseline is shown." in x3
    assert list(_rows(text, "Set5 x3")) == ["bicubic"]


def test_unavailable_metrics_are_words_with_their_reason_never_numbers():
    table = ScoreTable()
    table.add("Set5", 2, "bicubic", {"psnr": 33.0, "ssim": 0.93})
    table.add("Set5", 2, "l1", {"psnr": 34.0, "ssim": 0.94, "decode_ms_per_mp": 0.5})
    text = render_leaderboard(table.to_tree({"lpips": "LPIPS unavailable: no AlexNet weights"}), "statement", {},
                              [], {"l1": 2})
    assert "- LPIPS is unavailable: no AlexNet weights" in text and text.count("unavailable: ") == 1
    assert [cells[2] for cells in _rows(text, "Set5 x2").values()] == ["unavailable", "unavailable"]
