"""The evaluate stage on a tiny sweep output: metrics.json equals direct computations, the
leaderboard marks the best and says what it means, and the plots are images a person can open."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pipeline.bicubic import bicubic_baseline
from pipeline.data.paired import load_pairs
from pipeline.errors import PipelineError
from pipeline.inference import load_super_resolver, upscale_image
from pipeline.metrics import reference
from pipeline.report.evaluate import evaluate_all
from pipeline.report.metrics_file import HIGHER_IS_BETTER, flat_metrics

from .conftest import study_params

LPIPS_OFF = "LPIPS disabled in params (metrics.lpips.enabled is false)"


@pytest.fixture(scope="module")
def report(study: Path, tmp_path_factory) -> tuple[dict, dict, str]:
    """The summary, scores.json and leaderboard.md of one evaluation of the study."""
    results = tmp_path_factory.mktemp("results")
    summary = evaluate_all(study_params(study, results_dir=str(results)))
    return summary, json.loads((results / "scores.json").read_text()), (results / "leaderboard.md").read_text()


def test_metrics_nest_benchmark_scale_objective_metric(report):
    _, tree, _ = report
    assert list(tree) == ["Tiny", "Wide"]
    for scales in tree.values():
        assert list(scales) == ["x2", "x3"]
        assert list(scales["x2"]) == ["bicubic", "cs", "l1"]
        assert list(scales["x3"]) == ["bicubic"]
        assert list(scales["x2"]["bicubic"]) == ["psnr", "ssim", "lpips"]
        assert list(scales["x2"]["l1"]) == ["psnr", "ssim", "lpips", "decode_ms_per_mp"]
        assert [scales["x2"][name]["psnr"]["n"] for name in ("bicubic", "cs", "l1")] == [1, 1, 2]
        assert scales["x2"]["cs"]["psnr"]["std"] is None and scales["x2"]["l1"]["psnr"]["std"] > 0
        assert all(scales["x2"][name]["decode_ms_per_mp"]["mean"] > 0 for name in ("cs", "l1"))


def test_bicubic_rows_equal_the_bicubic_baseline(report, study):
    _, tree, _ = report
    for benchmark in ("Tiny", "Wide"):
        for scale in (2, 3):
            expected = bicubic_baseline(study / "data" / "benchmarks" / benchmark, scale)
            row = tree[benchmark][f"x{scale}"]["bicubic"]
            assert row["psnr"]["mean"] == pytest.approx(expected["psnr"], abs=1e-9)
            assert row["ssim"]["mean"] == pytest.approx(expected["ssim"], abs=1e-9)


def test_objective_rows_equal_a_direct_computation_over_seeds(report, study):
    _, tree, _ = report
    models = study / "models"
    for benchmark in ("Tiny", "Wide"):
        pairs = load_pairs(study / "data", "bicubic", 2, benchmark)
        for name, checkpoints in (("l1", ["seeds/0.pt", "seeds/1.pt"]), ("cs", ["best.pt"])):
            per_model = []
            for checkpoint in checkpoints:
                resolver = load_super_resolver(models / name / checkpoint, "cpu")
                per_model.append(np.mean([reference.psnr(upscale_image(resolver, pair.lr, tile=24, overlap=4),
                                                         pair.hr, 2, True) for pair in pairs]))
            row = tree[benchmark]["x2"][name]["psnr"]
            assert row["mean"] == pytest.approx(np.mean(per_model), abs=1e-9)
            assert row["std"] == (pytest.approx(np.std(per_model, ddof=1), abs=1e-9) if len(per_model) > 1 else None)


def test_lpips_without_its_weights_is_reported_unavailable_with_the_reason(report):
    _, tree, leaderboard = report
    entries = [entry["lpips"] for scales in tree.values() for objectives in scales.values()
               for entry in objectives.values()]
    assert entries and all(entry == {"unavailable": LPIPS_OFF} for entry in entries)
    assert f"- LPIPS is unavailable: {LPIPS_OFF}" in leaderboard


def _table(leaderboard: str, heading: str) -> dict[str, list[str]]:
    block = leaderboard.split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0]
    return {cells[0]: cells[1:] for cells in ([c.strip() for c in line.strip("|").split("|")]
                                              for line in block.splitlines() if re.match(r"\| \w", line))
            if cells[0] != "objective"}


def test_the_leaderboard_bolds_each_columns_best_mean(report):
    _, tree, leaderboard = report
    metrics = ["psnr", "ssim", "lpips", "decode_ms_per_mp"]
    for benchmark, scales in tree.items():
        for scale, objectives in scales.items():
            rows = _table(leaderboard, f"{benchmark} {scale}")
            assert list(rows) == list(objectives)
            for column, metric in enumerate(metrics):
                means = {name: entry[metric]["mean"] for name, entry in objectives.items()
                         if "mean" in entry.get(metric, {})}
                if not means:
                    continue
                pick = max if HIGHER_IS_BETTER[metric] else min
                best = pick(means, key=means.get)
                assert [name for name, cells in rows.items() if cells[column].startswith("**")] == [best]


def test_the_leaderboard_states_budget_scales_and_limits(report):
    _, _, leaderboard = report
    assert leaderboard.startswith("# Leaderboard\n")
    assert "6 iterations of 2 HR patches of 24x24 pixels" in leaderboard
    assert "network `edsr`" in leaderboard and "at x2" in leaderboard and "trained on 4 training images" in leaderboard
    assert "not comparable to the papers' DIV2K-trained results" in leaderboard
    assert leaderboard.count("No objective was trained at x3 (models exist at x2)") == 2
    assert "Tracking was disabled" in leaderboard


def test_the_plots_are_pngs_a_person_can_open(report):
    summary, _, _ = report
    names = sorted(Path(path).name for path in summary["plots"])
    # LPIPS is off: no perception-distortion plane; x3 has only bicubic: nothing to compare there
    assert names == sorted(["psnr_x2.png", "psnr_vs_l1_x2.png"]
                           + [f"comparison_{bench}_{scale}.png" for bench in ("Tiny", "Wide") for scale in ("x2", "x3")])
    for path in map(Path, summary["plots"]):
        assert path.stat().st_size > 5000
        with Image.open(path) as image:
            image.verify()
            assert image.format == "PNG" and min(image.size) > 200
    assert Path(summary["curves"]).read_text() == "objective,step,metric,value\n"
    assert Path(summary["curves"]).parent == Path(summary["plots"][0]).parent.parent
    assert summary["training_curves"].startswith("tracking was disabled")


def test_a_rerun_leaves_no_stale_plot(study, tmp_path):
    stale = tmp_path / "plots" / "comparison_Removed_x2.png"
    stale.parent.mkdir()
    stale.write_bytes(b"old")
    summary = evaluate_all(study_params(study, results_dir=str(tmp_path),
                                        evaluate={"scales": [2], "benchmarks": ["Tiny"], "device": "cpu"}))
    assert not stale.exists() and summary["benchmarks"] == ["Tiny"]


def test_missing_models_benchmarks_and_lr_images_are_errors_with_the_fix(study, tmp_path):
    with pytest.raises(PipelineError, match=r"no trained models in .*run the sweep stage first"):
        evaluate_all(study_params(study, models_dir=str(tmp_path / "empty")))
    with pytest.raises(PipelineError, match=r"evaluate.benchmarks names 'Set5' but .* does not exist"):
        evaluate_all(study_params(study, evaluate={"benchmarks": ["Set5"], "device": "cpu"}))
    with pytest.raises(PipelineError, match=r"evaluate.scales \[3\] holds no scale the models were trained at"):
        evaluate_all(study_params(study, evaluate={"scales": [3], "device": "cpu"}))
    with pytest.raises(PipelineError, match=r"LR folder .*x4/Tiny' does not exist; run `dvc repro degrade`"):
        evaluate_all(study_params(study, evaluate={"scales": [2, 4], "device": "cpu"}))


def test_metrics_json_holds_the_flat_dvc_columns_of_the_scores(report):
    summary, tree, _ = report
    flat = json.loads(Path(summary["metrics"]).read_text())
    assert flat == flat_metrics(tree)
    assert flat["Tiny/x2/l1/psnr"] == round(tree["Tiny"]["x2"]["l1"]["psnr"]["mean"], 3)
    assert not any(key.endswith("/lpips") for key in flat)  # LPIPS is off: no column, its reason is in the leaderboard
