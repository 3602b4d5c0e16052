"""verdicts.json holds the pooled verdicts of the summary, in each metric's direction, and the budget protocol."""

from __future__ import annotations

import json
from dataclasses import asdict

import numpy as np
import pytest

from pipeline.errors import PipelineError
from pipeline.report.per_image import PerImageScores
from pipeline.report.summary import pooled_delta
from pipeline.report.verdicts_file import pooled_verdicts, read_verdicts, write_verdicts

BUDGET = {"by": "iterations", "flops": None, "iterations": {"l1": 600, "sharp": 600},
          "text": "Budget: equal iterations (600 per model)."}


def _scores() -> PerImageScores:
    """``sharp`` is 0.5 dB above ``l1`` and has a lower (better) MDSI on every image of two benchmarks."""
    rng = np.random.default_rng(0)
    scores = PerImageScores()
    for benchmark in ("A", "B"):
        for image in range(4):
            scores.add(benchmark, 2, "bicubic", None, f"i{image}", {"psnr": 30.0 + image, "mdsi": 0.4})
            for seed in (0, 1):
                noise = 0.01 * rng.standard_normal()
                scores.add(benchmark, 2, "l1", seed, f"i{image}", {"psnr": 31.0 + image + noise, "mdsi": 0.3})
                scores.add(benchmark, 2, "sharp", seed, f"i{image}", {"psnr": 31.5 + image + noise, "mdsi": 0.2})
    return scores


def test_each_objective_gets_the_pooled_delta_to_l1_and_its_verdict_per_metric(tmp_path):
    scores = _scores()
    verdicts = pooled_verdicts(scores, {2: ["B", "A"]}, BUDGET)
    assert list(verdicts) == ["format", "budget", "scales"] and verdicts["budget"] == BUDGET
    x2 = verdicts["scales"]["x2"]
    assert x2["reference"] == "l1" and x2["benchmarks"] == ["A", "B"] and list(x2["objectives"]) == ["sharp"]
    sharp = x2["objectives"]["sharp"]
    assert list(sharp) == ["psnr", "mdsi"]  # ssim, lpips, haarpsi, ms_gmsd were not measured
    assert sharp["psnr"] == asdict(pooled_delta(scores, ["B", "A"], 2, "sharp", "l1", "psnr"))
    assert sharp["psnr"]["verdict"] == "better" and sharp["psnr"]["mean"] == pytest.approx(0.5)
    assert sharp["mdsi"]["verdict"] == "better" and sharp["mdsi"]["mean"] == pytest.approx(-0.1)  # lower is better
    assert (sharp["psnr"]["images"], sharp["psnr"]["seeds"]) == (8, 2)
    path = tmp_path / "verdicts.json"
    write_verdicts(path, verdicts)
    assert read_verdicts(path) == json.loads(json.dumps(verdicts))


def test_a_foreign_file_is_refused_with_the_fix(tmp_path):
    path = tmp_path / "verdicts.json"
    path.write_text("{not json")
    with pytest.raises(PipelineError, match="is not a readable JSON file .*run the evaluate stage again"):
        read_verdicts(path)
    path.write_text('{"format": 1, "scales": {}}')
    with pytest.raises(PipelineError, match="is not a verdicts.json of format 1"):
        read_verdicts(path)


def test_asking_about_an_objective_without_scores_adds_no_row():
    """The claims ask for objectives a study may lack (``fine_grained``); verdicts.json, written after them,
    lists only the objectives that were scored."""
    scores = _scores()
    assert scores.paired("A", 2, "fine_grained", "l1", "psnr") is None and scores.seeds("A", 2, "fine_grained") == []
    assert scores.methods("A", 2) == ["bicubic", "l1", "sharp"]
    assert list(pooled_verdicts(scores, {2: ["A", "B"]}, BUDGET)["scales"]["x2"]["objectives"]) == ["sharp"]
