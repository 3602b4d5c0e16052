"""bench/gpu_check.py --smoke: every section runs on the CPU without Ray, MLflow, DVC or LPIPS, and
its JSON holds what a GPU run will fill in, with the invariants that hold on any device."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.objectives.registry import OBJECTIVES, TERMS

ROOT = Path(__file__).resolve().parents[1]
ABSENT_ON_GPU_IMAGE = ["ray", "mlflow", "dvc", "lpips"]  # pydantic and albumentations travel as wheels
CUDA_TESTS = {
    "test_cuda_matches_cpu", "test_amp_on_cuda", "test_same_result_on_cuda_as_on_cpu",
    "test_tiled_equals_whole_image_when_overlap_covers_the_receptive_field[2-cuda]",
    "test_tiled_equals_whole_image_when_overlap_covers_the_receptive_field[3-cuda]",
}
RUN_WITHOUT = """
import runpy, sys
for name in sys.argv[1].split(","):
    sys.modules[name] = None  # importing it now raises ImportError, as on an image without it
sys.path.insert(0, "bench")
sys.argv = ["bench/gpu_check.py", *sys.argv[2:]]
runpy.run_path("bench/gpu_check.py", run_name="__main__")
"""


def positive_finite(value: float) -> bool:
    return isinstance(value, float) and math.isfinite(value) and value > 0


def test_smoke_run_writes_every_section_with_sane_figures(tmp_path: Path):
    out = tmp_path / "check"
    command = [sys.executable, "-c", RUN_WITHOUT, ",".join(ABSENT_ON_GPU_IMAGE), "--smoke", "--out", str(out)]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads((out / "gpu_check.json").read_text())
    assert results["machine"]["smoke"] and results["machine"]["device"] == "cpu"
    assert set(results["seconds"]) == {"training", "data_bound", "objectives", "cpu_vs_device", "tiling",
                                       "cuda_tests", "total"}

    variants = results["training"]["variants"]
    assert list(variants) == ["fp32", "bf16", "bf16+channels_last", "bf16+channels_last+compile"]
    for variant in variants.values():
        assert positive_finite(variant["fit_ms"]) and positive_finite(variant["plain_ms"])
        ratio = variant["ratio"]
        assert all(positive_finite(r) for r in ratio.values()) and ratio["min"] <= ratio["median"] <= ratio["max"]
        assert variant["amp"] == "none" and not variant["compile"]  # CUDA-only switches are off on the CPU
    assert [v["channels_last"] for v in variants.values()] == [False, False, True, True]
    data_bound = results["data_bound"]
    assert all(positive_finite(r) for r in data_bound["ratio"].values())
    assert data_bound["meets_target"] == (data_bound["ratio"]["median"] <= data_bound["target"] == 1.05)

    cases = results["objectives"]["cases"]
    assert set(OBJECTIVES) - {"regression"} <= set(cases)  # every registered objective ...
    assert {TERMS[name] for name in cases if name in TERMS} == set(TERMS.values())  # ... and every term class
    for name, case in cases.items():
        assert "error" not in case, case
        if "unavailable" in case:
            assert name in {"perceptual", "texture"} and "weights" in case["unavailable"]
        else:
            assert positive_finite(case["step_ms"]) and positive_finite(case["ratio_to_l1"]) and case["peak_mib"] >= 0
    assert cases["l1"]["ratio_to_l1"] == 1.0

    compare = results["cpu_vs_device"]  # the "device" is the CPU here: the same seed gives the same numbers
    assert list(compare["cpu_losses"]) == ["2", "4", "6"] and compare["device_losses"] == compare["cpu_losses"]
    assert compare["max_relative_difference"] == 0.0 and compare["curves_agree"]
    assert compare["psnr_difference_db"] == 0.0 and math.isfinite(compare["psnr_fp32"])

    tiling = results["tiling"]
    blocks = results["sizes"]["blocks"]
    assert tiling["receptive_radius"] == 4 + 2 * blocks  # extract, 2 per block, body end, upsampler, head
    assert tiling["overlap"] == tiling["receptive_radius"]
    assert tiling["equal"] and tiling["max_abs_difference"] == 0 and tiling["differing_fraction"] == 0.0
    assert positive_finite(tiling["tiled_mp_s"]) and positive_finite(tiling["plain_mp_s"])

    tests = results["cuda_tests"]
    assert tests["exit_status"] == 0 and tests["passed"] == tests["failed"] == tests["errors"] == 0
    assert {test["name"].rsplit("::", 1)[1] for test in tests["tests"]} == CUDA_TESTS
    assert tests["skipped"] == len(CUDA_TESTS)

    table = (out / "gpu_check.md").read_text()
    assert all(f"fit / plain loop, {name} |" in table for name in variants)
    assert "| pytest -m cuda | 0 passed, 0 failed, 0 errors, 5 skipped | all pass | NO |" in table


def test_a_failing_section_is_recorded_and_the_others_still_run(tmp_path: Path, monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "bench"))
    gpu_check = pytest.importorskip("gpu_check")

    def broken(*args):
        raise RuntimeError("CUDA error: an illegal memory access was encountered")

    monkeypatch.setitem(gpu_check.SECTIONS, "tiling", (broken, gpu_check.tiling_rows))
    arguments = ["--smoke", "--out", str(tmp_path), "--only", "tiling", "data_bound"]
    monkeypatch.setattr(sys, "argv", ["gpu_check.py", *arguments])
    with pytest.raises(SystemExit, match="section.s. tiling failed"):
        gpu_check.main()
    results = json.loads((tmp_path / "gpu_check.json").read_text())
    assert "illegal memory access" in results["tiling"]["error"]
    assert results["data_bound"]["ratio"]["median"] > 0 and set(results["seconds"]) == {"tiling", "data_bound", "total"}
    table = (tmp_path / "gpu_check.md").read_text()
    assert "| tiling | error: RuntimeError: CUDA error: an illegal memory access was encountered | runs | NO |" in table
    assert "| data-bound ratio, 0 workers |" in table
