"""The evaluate stage on a tiny sweep output: metrics.json equals direct computations, the
leaderboard marks the best and says what it means, and the plots are images a person can open."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import numpy as np
import torch
import pytest
from mlflow.utils.validation import validate_param_and_metric_name
from PIL import Image

from pipeline.bicubic import bicubic_baseline
from pipeline.data.paired import load_pairs
from pipeline.errors import PipelineError
from pipeline.metrics.fid_metric import hub_checkpoint
from pipeline.inference import load_super_resolver, upscale_image
from pipeline.metrics import reference
from pipeline.params_file import validate
from pipeline.report.evaluate import evaluate_all
from pipeline.report.metrics_file import HIGHER_IS_BETTER, flat_metrics
from pipeline.report.training_cost import flops_text
from pipeline.self_ensemble import SelfEnsemble
from pipeline.tracking.store import mlflow_name
from pipeline.train.checkpoint import load_checkpoint
from pipeline.train.flops import step_flops_of

from tests.metrics.test_fid_metric import random_fid_inception

from .conftest import study_params

LPIPS_OFF = "LPIPS disabled in params (metrics.lpips.enabled is false)"
FID_OFF = (f"FID unavailable: no Inception weights in {hub_checkpoint().parent}; run `python -m pipeline weights "
           "fetch` or set metrics.fid.weights to pytorch-fid's pt_inception-2015-12-05-6726825d.pth")


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
        assert list(scales["x2"]["bicubic"]) == ["psnr", "ssim", "lpips", "fid"]
        assert list(scales["x2"]["l1"]) == ["psnr", "ssim", "lpips", "fid", "decode_ms_per_mp"]
        assert scales["x2"]["l1"]["fid"] == {"unavailable": FID_OFF}
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
    """Objective -> the other cells of its row (rank first)."""
    block = leaderboard.split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0]
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in block.splitlines()
            if re.match(r"\| (\d|ref)", line)]
    return {cells[1].split(" ")[0].strip("*"): [cells[0], *cells[2:]] for cells in rows}


def test_the_leaderboard_ranks_by_psnr_with_paired_intervals_against_l1_and_bicubic(report, tmp_path):
    summary, tree, leaderboard = report
    with open(summary["image_scores"], newline="") as handle:
        scores = list(csv.DictReader(handle))
    for benchmark in ("Tiny", "Wide"):
        objectives = tree[benchmark]["x2"]
        rows = _table(leaderboard, f"{benchmark} x2")
        ranked = sorted(["cs", "l1"], key=lambda name: -objectives[name]["psnr"]["mean"])
        assert list(rows) == [*ranked, "bicubic"]
        assert [rows[name][0] for name in rows] == ["1", "2", "ref."]
        # l1 has seeds 0 and 1, cs only seed 0: cs vs l1 pairs on seed 0 alone
        cs_vs_l1 = rows["cs"][4]  # LPIPS and FID are unavailable for every row: no columns
        per_image = {(row["method"], row["seed"], row["image"]): float(row["psnr"]) for row in scores
                     if (row["benchmark"], row["scale"]) == (benchmark, "2")}
        assert list(scores[0])[:5] == ["benchmark", "scale", "method", "seed", "image"]
        images = sorted({key[2] for key in per_image})
        expected = np.mean([per_image["cs", "0", image] - per_image["l1", "0", image] for image in images])
        assert cs_vs_l1.startswith(f"{expected:+.2f} [")
        assert rows["l1"][4] == "–" and rows["bicubic"][5] == "–"
        assert cs_vs_l1.endswith("not evidence (1 seed)")  # cs has one model
        l1_vs_bicubic = np.mean([per_image["l1", seed, image] - per_image["bicubic", "", image]
                                 for image in images for seed in ("0", "1")])
        assert rows["l1"][5].startswith(f"{l1_vs_bicubic:+.2f} [")
    x3 = _table(leaderboard, "Tiny x3")
    assert list(x3) == ["bicubic"]


def test_claims_list_every_seed_claim_with_evidence_or_the_reason_it_is_untestable(report):
    summary, _, _ = report
    claims = Path(summary["claims"]).read_text()
    assert claims.startswith("# The seed papers' claims, tested\n\nGenerated on ")
    assert claims.count("\n## ") == 6
    assert "- Tiny x2, psnr: not testable here: the study evaluated no `tlw` at Tiny x2" in claims
    assert "- Tiny x2, lpips: not testable here: LPIPS unavailable (reason above)" in claims
    assert claims.count(LPIPS_OFF.removeprefix("LPIPS ")) == 1
    line = next(line for line in claims.splitlines() if line.startswith("- Tiny x2, psnr:") and "[" in line)
    assert line.endswith("→ **not evidence (1 seed)** (2 images x 1 seed)")
    statuses = [line.split(" | ")[2] for line in claims.splitlines() if re.match(r"\| \d \|", line)]
    assert len(statuses) == 6 and all(status.endswith("(on Tiny x2, Wide x2)") for status in statuses)
    assert not any(status.startswith(("supported", "contradicted")) for status in statuses)


def test_the_leaderboard_states_budget_scales_and_limits(report):
    _, _, leaderboard = report
    assert leaderboard.startswith("# Leaderboard\n")
    assert "6 iterations of 2 HR patches of 24x24 pixels" in leaderboard
    assert "network `edsr`" in leaderboard and "at x2" in leaderboard and "trained on 4 training images" in leaderboard
    assert "not comparable to the papers' DIV2K-trained results" in leaderboard
    assert leaderboard.count("No objective was trained at x3 (models exist at x2)") == 2
    assert "Tracking was disabled" in leaderboard


def test_the_leaderboard_shows_training_cost_and_claims_and_verdicts_name_the_protocol(report, study):
    summary, _, leaderboard = report
    models = study / "models"
    per_step = {name: step_flops_of(validate(load_checkpoint(models / name / "best.pt")["meta"]["params"]))
                for name in ("l1", "cs")}
    trained_ms = load_checkpoint(models / "l1" / "seeds" / "0.pt")["meta"]["step_ms"]
    for benchmark in ("Tiny", "Wide"):
        rows = _table(leaderboard, f"{benchmark} x2")
        # 6 iterations each; l1's seed 1 and cs are untrained networks: no step time recorded
        assert rows["l1"][-4:-2] == [flops_text(per_step["l1"] * 6), f"{trained_ms:.1f}"]
        assert rows["cs"][-4:-2] == [flops_text(per_step["cs"] * 6), "–"]
        assert rows["bicubic"][-4:-2] == ["–", "–"]
    line = "Budget: equal iterations (6 per model)."
    assert f"\n\n{line}\n\n" in Path(summary["claims"]).read_text()
    verdicts = json.loads(Path(summary["verdicts"]).read_text())
    assert verdicts["budget"] == {"by": "iterations", "flops": None, "iterations": {"cs": 6, "l1": 6}, "text": line}
    x2 = verdicts["scales"]["x2"]
    assert (x2["reference"], x2["benchmarks"], list(x2["objectives"])) == ("l1", ["Tiny", "Wide"], ["cs"])
    cs = x2["objectives"]["cs"]
    assert {"psnr", "ssim"} <= set(cs) and "lpips" not in cs
    assert all(entry["verdict"] == "not evidence (1 seed)" for entry in cs.values())
    assert list(verdicts["scales"]) == ["x2"]  # x3 has no trained model


def test_the_plots_are_pngs_a_person_can_open(report):
    summary, _, _ = report
    names = sorted(Path(path).name for path in summary["plots"])
    # LPIPS is off: no perception-distortion plane; x3 has only bicubic: nothing to compare there
    assert names == sorted(["psnr_x2.png", "psnr_vs_l1_x2.png", "spectrum_Tiny_x2.png", "spectrum_Wide_x2.png"]
                           + [f"comparison_{bench}_{scale}.png" for bench in ("Tiny", "Wide") for scale in ("x2", "x3")])
    for path in map(Path, summary["plots"]):
        assert path.stat().st_size > 5000
        with Image.open(path) as image:
            image.verify()
            assert image.format == "PNG" and min(image.size) > 200
    assert Path(summary["curves"]).read_text() == "objective,seed,step,metric,value\n"
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


def test_fid_from_a_local_checkpoint_is_measured_per_model_and_tested_in_the_claims(study, tmp_path):
    """A random-weight FID Inception saved by the test stands in for the real checkpoint."""
    weights = tmp_path / "inception.pth"
    torch.save(random_fid_inception().state_dict(), weights)
    params = study_params(study, results_dir=str(tmp_path / "results"),
                          metrics={"lpips": {"enabled": False},
                                   "fid": {"weights": str(weights), "patch": 16, "dims": 64}},
                          evaluate={"scales": [2], "benchmarks": ["Tiny"], "tile": 24, "tile_overlap": 4,
                                    "crop_size": 24, "device": "cpu"})
    summary = evaluate_all(params)
    tree = json.loads(Path(summary["scores"]).read_text())
    rows = tree["Tiny"]["x2"]
    assert rows["l1"]["fid"]["n"] == 2 and all(rows[name]["fid"]["mean"] > 0 for name in ("bicubic", "cs", "l1"))
    assert json.loads(Path(summary["metrics"]).read_text())["Tiny/x2/l1/fid"] == round(rows["l1"]["fid"]["mean"], 2)
    claims = Path(summary["claims"]).read_text()
    assert re.search(r"- Tiny x2, fid: not testable here: the study evaluated no `grad2`", claims)
    assert "FID unavailable" not in claims


def test_metrics_json_holds_the_flat_dvc_columns_of_the_scores(report):
    summary, tree, _ = report
    flat = json.loads(Path(summary["metrics"]).read_text())
    assert flat == flat_metrics(tree)
    assert flat["Tiny/x2/l1/psnr"] == round(tree["Tiny"]["x2"]["l1"]["psnr"]["mean"], 3)
    assert not any(key.endswith("/lpips") for key in flat)  # LPIPS is off: no column, its reason is in the leaderboard


def test_other_decodes_of_a_model_are_scored_as_rows_of_their_own(study, tmp_path):
    params = study_params(study, results_dir=str(tmp_path / "results"),
                          evaluate={"scales": [2], "benchmarks": ["Tiny"], "tile": 24, "tile_overlap": 4,
                                    "crop_size": 24, "device": "cpu", "decodes": {"cs": ["argmax"]}})
    summary = evaluate_all(params)
    rows = json.loads(Path(summary["scores"]).read_text())["Tiny"]["x2"]
    assert list(rows) == ["bicubic", "cs", "cs.argmax", "l1"]
    flat = json.loads(Path(summary["metrics"]).read_text())  # MLflow refused '@' (cs@argmax) and dropped the batch
    assert "Tiny/x2/cs.argmax/psnr" in flat
    assert all(validate_param_and_metric_name(key) and mlflow_name(key) == key for key in flat)
    resolver = load_super_resolver(study / "models" / "cs" / "best.pt")
    resolver.objective.use_decode("argmax")
    pairs = load_pairs(study / "data", "bicubic", 2, "Tiny")
    expected = np.mean([reference.psnr(upscale_image(resolver, pair.lr, tile=24, overlap=4), pair.hr, 2, True)
                        for pair in pairs])
    assert rows["cs.argmax"]["psnr"]["mean"] == pytest.approx(expected, abs=1e-9)
    assert rows["cs.argmax"]["psnr"]["mean"] != rows["cs"]["psnr"]["mean"]


def test_self_ensemble_rows_are_the_models_with_x8_self_ensemble(study, tmp_path):
    params = study_params(study, results_dir=str(tmp_path / "results"),
                          evaluate={"scales": [2], "benchmarks": ["Tiny"], "tile": 24, "tile_overlap": 4,
                                    "crop_size": 24, "device": "cpu", "self_ensemble": True})
    summary = evaluate_all(params)
    rows = json.loads(Path(summary["scores"]).read_text())["Tiny"]["x2"]
    assert list(rows) == ["bicubic", "cs", "cs+", "l1", "l1+"]
    ensemble = SelfEnsemble(load_super_resolver(study / "models" / "cs" / "best.pt"))
    pairs = load_pairs(study / "data", "bicubic", 2, "Tiny")
    expected = np.mean([reference.psnr(upscale_image(ensemble, pair.lr, tile=24, overlap=4), pair.hr, 2, True)
                        for pair in pairs])
    assert rows["cs+"]["psnr"]["mean"] == pytest.approx(expected, abs=1e-9)
    assert rows["cs+"]["psnr"]["mean"] != rows["cs"]["psnr"]["mean"]
    leaderboard = (tmp_path / "results" / "leaderboard.md").read_text()
    assert re.search(r"^\| \d \| (\*\*)?cs\+(\*\*)? ", leaderboard, re.MULTILINE)
    assert "Rows ending in + are the same models with x8 self-ensemble" in leaderboard
