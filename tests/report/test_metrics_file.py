"""scores.json: per-model values summarised over seeds, in a fixed key order; metrics.json: its flat columns for DVC."""

from __future__ import annotations

import json
import statistics

import pytest

from pipeline.report.metrics_file import ScoreTable, flat_metrics, read_metrics, summarize, write_metrics


def test_summarize_gives_the_mean_and_sample_std_over_models():
    values = [30.0, 31.5, 29.25]
    assert summarize(values) == {"mean": pytest.approx(statistics.mean(values), abs=1e-12),
                                 "std": pytest.approx(statistics.stdev(values), abs=1e-12), "n": 3}
    assert summarize([28.5]) == {"mean": 28.5, "std": None, "n": 1}


def test_the_tree_orders_benchmarks_scales_bicubic_first_and_metrics():
    table = ScoreTable()
    table.add("Set5", 3, "l1", {"ssim": 0.8, "psnr": 30.0, "decode_ms_per_mp": 1.0})
    table.add("Set14", 2, "charbonnier", {"psnr": 29.0, "ssim": 0.7})
    table.add("Set5", 2, "l1", {"psnr": 33.0, "ssim": 0.9})
    table.add("Set5", 2, "bicubic", {"psnr": 32.0, "ssim": 0.88})
    table.add("Set5", 2, "l1", {"psnr": 34.0, "ssim": 0.91})
    tree = table.to_tree({"lpips": "no weights"})
    assert list(tree) == ["Set14", "Set5"]
    assert list(tree["Set5"]) == ["x2", "x3"]
    assert list(tree["Set5"]["x2"]) == ["bicubic", "l1"]
    assert list(tree["Set5"]["x3"]["l1"]) == ["psnr", "ssim", "lpips", "decode_ms_per_mp"]
    assert tree["Set5"]["x2"]["l1"]["psnr"] == summarize([33.0, 34.0])
    assert tree["Set5"]["x2"]["bicubic"]["lpips"] == {"unavailable": "no weights"}


def test_metrics_round_trip_through_json_keeping_the_order(tmp_path):
    table = ScoreTable()
    table.add("B", 2, "z-last", {"psnr": 1.0})
    table.add("B", 2, "bicubic", {"psnr": 2.0})
    tree = table.to_tree({})
    path = tmp_path / "results" / "metrics.json"
    write_metrics(path, tree)
    assert read_metrics(path) == tree
    assert list(json.loads(path.read_text())["B"]["x2"]) == ["bicubic", "z-last"]
    assert [p.name for p in path.parent.iterdir()] == ["metrics.json"]


def test_dvc_metrics_are_one_flat_column_per_benchmark_scale_objective_and_available_metric():
    table = ScoreTable()
    table.add("Set5", 2, "bicubic", {"psnr": 33.68123, "ssim": 0.930512})
    table.add("Set5", 2, "l1", {"psnr": 34.0, "ssim": 0.9, "decode_ms_per_mp": 5.0})
    table.add("Set5", 2, "l1", {"psnr": 34.5, "ssim": 0.95, "decode_ms_per_mp": 6.0})
    flat = flat_metrics(table.to_tree({"lpips": "no weights"}))
    assert flat == {"Set5/x2/bicubic/psnr": 33.681, "Set5/x2/bicubic/ssim": 0.9305,
                    "Set5/x2/l1/psnr": 34.25, "Set5/x2/l1/ssim": 0.925}
    assert all(isinstance(value, float) for value in flat.values())
