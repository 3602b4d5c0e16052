"""The upscale command logic: files and folders in, PNGs out, wrong models and bad inputs refused."""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pipeline.cli import main
from pipeline.errors import PipelineError
from pipeline.imageio import read_image, write_png
from pipeline.inference import load_super_resolver, tile_count, upscale_image
from pipeline.self_ensemble import SelfEnsemble
from pipeline.upscale import upscale_paths


def write_image(path: Path, height: int, width: int, seed: int) -> np.ndarray:
    image = np.random.default_rng(seed).integers(0, 256, size=(height, width, 3), dtype=np.uint8)
    write_png(path, image)
    return image


def test_folders_and_files_are_upscaled_into_pngs(tiny_checkpoint: Path, tmp_path: Path, caplog):
    inputs = tmp_path / "in"
    images = {"a": write_image(inputs / "a.png", 12, 10, 0), "b": write_image(inputs / "sub" / "b.png", 9, 14, 1)}
    (inputs / "sub" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    single = tmp_path / "c.png"
    images["c"] = write_image(single, 8, 8, 2)
    out = tmp_path / "out"
    with caplog.at_level(logging.WARNING):
        written = upscale_paths(str(tiny_checkpoint), 2, [inputs, single], out, tile=8, overlap=2, device="cpu")
    assert written == [out / "a.png", out / "sub" / "b.png", out / "c.png"]
    assert "broken.png" in caplog.text and "skipping" in caplog.text
    resolver = load_super_resolver(tiny_checkpoint, "cpu")
    for path, name in zip(written, "abc"):
        result = read_image(path)
        assert result.shape == (images[name].shape[0] * 2, images[name].shape[1] * 2, 3)
        assert len(np.unique(result)) > 30  # a varied image, not a clamped constant
        np.testing.assert_array_equal(result, upscale_image(resolver, images[name], tile=8, overlap=2))


def test_a_model_for_another_scale_is_refused(tiny_checkpoint: Path, tmp_path: Path):
    write_image(tmp_path / "a.png", 8, 8, 0)
    with pytest.raises(PipelineError) as error:
        upscale_paths(str(tiny_checkpoint), 4, [tmp_path / "a.png"], tmp_path / "out", device="cpu")
    assert str(error.value) == (f"model {tiny_checkpoint} was trained for x2 but --scale 4 was given; "
                                "use a x4 model, or drop --scale (the model's x2 is used)")
    assert not (tmp_path / "out").exists()


def test_the_scale_is_read_from_the_model_and_a_models_folder_is_accepted(tiny_checkpoint: Path, tmp_path: Path,
                                                                          capsys):
    image = write_image(tmp_path / "a.png", 9, 11, 0)
    folder = tmp_path / "models" / "l1"
    folder.mkdir(parents=True)
    (folder / "best.pt").write_bytes(tiny_checkpoint.read_bytes())
    assert main(["-q", "upscale", "--model", str(folder), str(tmp_path / "a.png"), "-o", str(tmp_path / "out")]) == 0
    expected = upscale_image(load_super_resolver(tiny_checkpoint), image, tile=256, overlap=16)
    np.testing.assert_array_equal(read_image(tmp_path / "out" / "a.png"), expected)
    assert expected.shape == (18, 22, 3)


def test_self_ensemble_writes_the_ensembled_image(tiny_checkpoint: Path, tmp_path: Path):
    image = write_image(tmp_path / "a.png", 9, 11, 0)
    upscale_paths(str(tiny_checkpoint), None, [tmp_path / "a.png"], tmp_path / "out", tile=10, overlap=4,
                  device="cpu", progress=False, self_ensemble=True)
    ensemble = SelfEnsemble(load_super_resolver(tiny_checkpoint))
    written = read_image(tmp_path / "out" / "a.png")
    np.testing.assert_array_equal(written, upscale_image(ensemble, image, tile=10, overlap=4))
    assert not np.array_equal(written, upscale_image(load_super_resolver(tiny_checkpoint), image, tile=10, overlap=4))


def test_an_image_cut_into_tiles_shows_a_tile_progress_bar(tiny_checkpoint: Path, tmp_path: Path, capsys):
    write_image(tmp_path / "big.png", 30, 30, 0)
    upscale_paths(str(tiny_checkpoint), 2, [tmp_path / "big.png"], tmp_path / "out", tile=14, overlap=2,
                  device="cpu")
    assert tile_count(30, 30, 14, 2) == 9
    assert re.search(r"big\.png: +0%\S* +\| 0/9 \[", capsys.readouterr().err)
    done: list[int] = []
    upscale_image(load_super_resolver(tiny_checkpoint), read_image(tmp_path / "big.png"), tile=14, overlap=2,
                  batch=2, on_tiles=done.append)
    assert sum(done) == 9 and max(done) == 2


def test_a_missing_model_says_not_found_and_suggests_the_study_models(tiny_checkpoint: Path, tmp_path: Path,
                                                                    monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    write_image(tmp_path / "a.png", 8, 8, 0)
    (tmp_path / "models" / "cs").mkdir(parents=True)
    (tmp_path / "models" / "cs" / "best.pt").write_bytes(tiny_checkpoint.read_bytes())
    (tmp_path / "models" / "cs" / "info.json").write_text("{}")
    assert main(["upscale", "--model", "models/l1/best.pt", "a.png", "-o", "out"]) == 2
    assert capsys.readouterr().err == ("error: model 'models/l1/best.pt' not found; the study's models here are "
                                       "models/cs/best.pt (a models/<objective> folder works too)\n")
    assert main(["upscale", "--model", "models/cs/info.json", "a.png", "-o", "out"]) == 2
    assert capsys.readouterr().err == ("error: model 'models/cs/info.json' is not a checkpoint (not a torch "
                                       "archive: another kind of file, or truncated); pass models/cs/best.pt\n")


def test_an_unexpected_architecture_is_refused(tiny_checkpoint: Path, tmp_path: Path):
    write_image(tmp_path / "a.png", 8, 8, 0)
    with pytest.raises(PipelineError, match="is a 'edsr' network but 'srcnn' was expected"):
        upscale_paths(str(tiny_checkpoint), 2, [tmp_path / "a.png"], tmp_path / "out", device="cpu",
                      architecture="srcnn")
    assert upscale_paths(str(tiny_checkpoint), 2, [tmp_path / "a.png"], tmp_path / "out", device="cpu",
                         architecture="edsr") == [tmp_path / "out" / "a.png"]


def test_no_input_images_is_an_error(tiny_checkpoint: Path, tmp_path: Path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(PipelineError, match="no images found"):
        upscale_paths(str(tiny_checkpoint), 2, [tmp_path / "empty"], tmp_path / "out", device="cpu")
    with pytest.raises(PipelineError, match="does not exist"):
        upscale_paths(str(tiny_checkpoint), 2, [tmp_path / "missing.png"], tmp_path / "out", device="cpu")


def test_only_unreadable_images_is_an_error(tiny_checkpoint: Path, tmp_path: Path):
    (tmp_path / "bad.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(PipelineError, match="none of the 1 input images could be read"):
        upscale_paths(str(tiny_checkpoint), 2, [tmp_path / "bad.jpg"], tmp_path / "out", device="cpu")


def test_two_inputs_for_one_output_are_refused_before_any_work(tiny_checkpoint: Path, tmp_path: Path):
    write_image(tmp_path / "x.png", 8, 8, 0)
    write_image(tmp_path / "x.jpg", 8, 8, 1)
    with pytest.raises(PipelineError, match="would both be written to"):
        upscale_paths(str(tiny_checkpoint), 2, [tmp_path], tmp_path / "out", device="cpu")
    assert not (tmp_path / "out").exists()


def test_upscale_command_imports_neither_mlflow_nor_torchvision_nor_the_report(tiny_checkpoint: Path, tmp_path: Path):
    """Those imports cost seconds at every start; a checkpoint upscale needs none of them."""
    write_image(tmp_path / "a.png", 8, 8, 0)
    probe = ("import sys; from pipeline.cli import main; "
             f"code = main(['upscale', {str(tmp_path / 'a.png')!r}, '--model', {str(tiny_checkpoint)!r}, "
             f"'--scale', '2', '-o', {str(tmp_path / 'out')!r}, '--device', 'cpu']); "
             "print(code, sorted({m.split('.')[0] if m.split('.')[0] != 'pipeline' else '.'.join(m.split('.')[:2]) "
             "for m in sys.modules}))")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True,
                            env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])})
    code, modules = result.stdout.splitlines()[-1].split(" ", 1)
    assert code == "0" and (tmp_path / "out" / "a.png").is_file()
    for heavy in ("mlflow", "torchvision", "pipeline.report", "pipeline.tracking"):
        assert f"'{heavy}'" not in modules
    assert "'torch'" in modules  # the probe saw the imports of a real run


def test_upscale_keeps_freed_cpu_memory_like_training(tiny_checkpoint: Path, tmp_path: Path, monkeypatch):
    import pipeline.upscale

    devices = []
    monkeypatch.setattr(pipeline.upscale, "keep_freed_cpu_memory", devices.append)
    write_image(tmp_path / "a.png", 8, 8, 0)
    upscale_paths(str(tiny_checkpoint), 2, [tmp_path / "a.png"], tmp_path / "out", device="cpu")
    assert [str(device) for device in devices] == ["cpu"]


def test_tiled_edsr_equals_its_whole_image_output_bitwise(tiny_checkpoint: Path):
    """The tiny EDSR sees at most 6 LR pixels around each output pixel; overlap 8 covers that."""
    resolver = load_super_resolver(str(tiny_checkpoint), "cpu")
    image = np.random.default_rng(3).integers(0, 256, size=(50, 37, 3), dtype=np.uint8)
    whole = upscale_image(resolver, image, tile=64, overlap=0)
    for tile, batch in ((17, 1), (24, 3), (40, 2)):
        np.testing.assert_array_equal(upscale_image(resolver, image, tile=tile, overlap=8, batch=batch), whole)
