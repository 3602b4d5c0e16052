"""The score command: a model on a folder of HR images (bicubic LR or given LR), scored as evaluate scores."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from pipeline.cli import main
from pipeline.degrade.imresize import imresize_uint8
from pipeline.errors import PipelineError
from pipeline.imageio import modcrop, write_png
from pipeline.inference import load_super_resolver, upscale_image
from pipeline.metrics import reference
from pipeline.params_file import validate
from pipeline.score import score_model
from pipeline.self_ensemble import SelfEnsemble
from tests.conftest import synthetic_photo

NO_LPIPS = validate({"metrics": {"lpips": {"enabled": False}}})


def hr_folder(root: Path) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    images = {"a": synthetic_photo(rng, 33, 40), "sub/b": synthetic_photo(rng, 30, 27)}
    for name, image in images.items():
        write_png(root / "hr" / f"{name}.png", image)
    return images


def expected_scores(resolver, lr: np.ndarray, hr: np.ndarray) -> tuple[float, float]:
    sr = upscale_image(resolver, lr, tile=16, overlap=4)
    return reference.psnr(sr, hr, 2, True), reference.ssim(sr, hr, 2, True)


def test_scores_equal_a_direct_computation_on_bicubic_lr(tiny_checkpoint: Path, tmp_path: Path):
    images = hr_folder(tmp_path)
    summary = score_model(NO_LPIPS, str(tiny_checkpoint), tmp_path / "hr", tmp_path / "out", tile=16, overlap=4,
                          device="cpu")
    resolver = load_super_resolver(tiny_checkpoint)
    rows = list(csv.DictReader((tmp_path / "out" / "image_scores.csv").open()))
    assert [row["image"] for row in rows] == ["a", "sub/b"]
    assert {(row["benchmark"], row["scale"], row["method"], row["seed"]) for row in rows} == {("hr", "2", "regression", "")}
    for row in rows:
        hr = modcrop(images[row["image"]], 2)
        psnr, ssim = expected_scores(resolver, imresize_uint8(hr, 1 / 2), hr)
        assert float(row["psnr"]) == psnr and float(row["ssim"]) == ssim
    assert summary["mean"]["psnr"] == pytest.approx(np.mean([float(row["psnr"]) for row in rows]), abs=1e-12)
    assert summary["images"] == 2 and summary["scale"] == 2 and summary["crop_border"] == 2
    assert summary["unavailable"] == {"lpips": "LPIPS disabled in params (metrics.lpips.enabled is false)",
                                      "fid": summary["unavailable"]["fid"]}
    assert json.loads((tmp_path / "out" / "summary.json").read_text()) == summary


def test_given_lr_images_are_used_and_self_ensemble_is_scored(tiny_checkpoint: Path, tmp_path: Path):
    images = hr_folder(tmp_path)
    rng = np.random.default_rng(1)
    lrs = {}
    for name, image in images.items():
        lr = imresize_uint8(modcrop(image, 2), 1 / 2)
        lrs[name] = np.clip(lr.astype(int) + rng.integers(-20, 21, lr.shape), 0, 255).astype(np.uint8)
        write_png(tmp_path / "lr" / f"{name}.png", lrs[name])
    summary = score_model(NO_LPIPS, str(tiny_checkpoint), tmp_path / "hr", tmp_path / "out", lr_dir=tmp_path / "lr",
                          tile=16, overlap=4, device="cpu", self_ensemble=True)
    ensemble = SelfEnsemble(load_super_resolver(tiny_checkpoint))
    expected = [expected_scores(ensemble, lrs[name], modcrop(images[name], 2))[0] for name in sorted(images)]
    assert summary["mean"]["psnr"] == pytest.approx(np.mean(expected), abs=1e-12)
    rows = list(csv.DictReader((tmp_path / "out" / "image_scores.csv").open()))
    assert {row["method"] for row in rows} == {"regression+"}


def test_the_command_prints_the_summary_and_refuses_bad_inputs_in_one_sentence(tiny_checkpoint, tmp_path, capsys):
    hr_folder(tmp_path)
    base = ["-q", "score", "--set", "metrics.lpips.enabled=false", "--model", str(tiny_checkpoint), "--hr-dir",
            str(tmp_path / "hr"), "-o", str(tmp_path / "out")]
    assert main(base) == 0
    assert json.loads(capsys.readouterr().out)["mean"]["psnr"] > 0
    assert main([*base, "--scale", "3"]) == 2
    assert "was trained for x2 but --scale 3 was given" in capsys.readouterr().err
    (tmp_path / "lr").mkdir()
    write_png(tmp_path / "lr" / "a.png", np.zeros((16, 20, 3), np.uint8))
    assert main([*base, "--lr-dir", str(tmp_path / "lr")]) == 2
    assert capsys.readouterr().err == (f"error: LR folder '{tmp_path / 'lr'}' has no image for "
                                       f"'{tmp_path / 'hr' / 'sub' / 'b.png'}' (looked for sub/b.*); give every HR "
                                       "image its LR image under the same name\n")
    with pytest.raises(PipelineError, match="HR folder '.*nothing' does not exist"):
        score_model(NO_LPIPS, str(tiny_checkpoint), tmp_path / "nothing", tmp_path / "out", device="cpu")
