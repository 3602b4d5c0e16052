"""The leaderboard ranks by PSNR, names a winner only outside the noise, and says why a metric is missing."""

from __future__ import annotations

import numpy as np

from pipeline.report.leaderboard import render_leaderboard
from pipeline.report.metrics_file import ScoreTable
from pipeline.report.per_image import PerImageScores

IMAGES = [f"img{i}" for i in range(6)]


def _study(gains: dict[str, float], noise: float) -> tuple[dict, PerImageScores]:
    """bicubic at 30 dB per image; each objective = bicubic + its gain + per-image, per-seed noise."""
    rng = np.random.default_rng(0)
    table, scores = ScoreTable(), PerImageScores()
    base = {image: 30.0 + index for index, image in enumerate(IMAGES)}
    for image in IMAGES:
        scores.add("Set5", 2, "bicubic", None, image, {"psnr": base[image], "ssim": 0.9})
    table.add("Set5", 2, "bicubic", {"psnr": np.mean(list(base.values())), "ssim": 0.9})
    for name, gain in gains.items():
        for seed in (0, 1):
            values = {image: base[image] + gain + noise * rng.standard_normal() for image in IMAGES}
            for image, value in values.items():
                scores.add("Set5", 2, name, seed, image, {"psnr": value, "ssim": 0.9})
            table.add("Set5", 2, name, {"psnr": np.mean(list(values.values())), "ssim": 0.9,
                                        "decode_ms_per_mp": 1.0})
    return table.to_tree({"lpips": "LPIPS unavailable: no AlexNet weights"}), scores


def _rows(text: str) -> list[list[str]]:
    return [[c.strip() for c in line.strip("|").split("|")] for line in text.splitlines()
            if line.startswith(("| 1 ", "| 2 ", "| 3 ", "| ref."))]


def test_a_clear_winner_is_ranked_first_and_marked():
    tree, scores = _study({"l1": 1.0, "grad2": 1.5, "cs": 0.2}, noise=0.01)
    text = render_leaderboard(tree, scores, [], "statement", {"l1": "`run-l1`"}, ["a note"], {"l1": 2})
    rows = _rows(text)
    assert [row[1] for row in rows] == ["**grad2** (winner)", "l1", "cs", "bicubic"]
    assert [row[0] for row in rows] == ["1", "2", "3", "ref."]
    grad2, l1, cs, bicubic = rows
    # no LPIPS column: it is unavailable for every row
    assert grad2[5].startswith("+0.50 [") and grad2[5].endswith("better")
    assert cs[5].startswith("-0.80 [") and cs[5].endswith("worse")
    assert l1[5] == "–" and l1[6].startswith("+1.00 [") and bicubic[6] == "–"
    assert l1[-1] == "`run-l1`" and l1[-2] == "2" and bicubic[-2] == "1"
    assert "No winner" not in text


def test_no_winner_is_marked_inside_the_noise():
    tree, scores = _study({"l1": 1.0, "grad2": 1.02}, noise=0.5)
    text = render_leaderboard(tree, scores, [], "statement", {}, [], {"l1": 2})
    assert "(winner)" not in text
    first = _rows(text)[0][1]
    other = ({"l1", "grad2"} - {first}).pop()
    assert f"No winner: {first} ranks first, but its PSNR lead is not established over {other} (" in text


def test_a_metric_unavailable_everywhere_has_no_column_and_its_reason_said_once():
    tree, scores = _study({"l1": 1.0}, noise=0.1)
    text = render_leaderboard(tree, scores, [], "statement", {}, [], {"l1": 2})
    assert "- LPIPS is unavailable: no AlexNet weights" in text and text.count("unavailable") == 1
    assert "LPIPS ↓" not in text and "| PSNR (dB) ↑ | SSIM ↑ | SR time (ms/MP) ↓ |" in text


def test_a_scale_without_models_says_so_and_shows_only_bicubic():
    tree, scores = _study({"l1": 1.0}, noise=0.1)
    table = ScoreTable()
    table.add("Set5", 3, "bicubic", {"psnr": 28.0, "ssim": 0.8})
    tree["Set5"]["x3"] = table.to_tree({})["Set5"]["x3"]
    text = render_leaderboard(tree, scores, [], "statement", {}, [], {"l1": 2})
    x3 = text.split("## Set5 x3\n", 1)[1]
    assert "No objective was trained at x3 (models exist at x2); only the bicubic baseline is shown." in x3
    assert [row[1] for row in _rows(x3)] == ["bicubic"]
