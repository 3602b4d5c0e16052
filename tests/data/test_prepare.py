"""The prepare stage: deterministic split, skipped files, benchmarks, atomic replacement."""

from __future__ import annotations

import hashlib
import io
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from pipeline.config import Params
from pipeline.params_file import validate
from pipeline.data.presets import PRESETS, Preset
from pipeline.data.prepare import prepare_all
from pipeline.errors import ConfigError, PipelineError
from pipeline.imageio import read_image

from .conftest import closed_port, make_archive, png_bytes, write_image

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared"


def make_params(tmp_path: Path, prepare: dict[str, Any], seed: int = 0) -> Params:
    settings = {"min_side": 8, "val_count": 1, "cache_dir": str(tmp_path / "cache"), **prepare}
    return validate({"seed": seed, "data_dir": str(tmp_path / "data"), "prepare": settings})


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def folder_source(path: Path, **extra: Any) -> dict[str, Any]:
    return {"kind": "folder", "path": str(path), **extra}


def small_hr(tmp_path: Path) -> dict[str, Any]:
    """A folder source of two small images (train 1, val 1)."""
    for seed in range(2):
        write_image(tmp_path / "small_hr" / f"{seed}.png", seed=seed)
    return folder_source(tmp_path / "small_hr")


def test_builtin_gives_colour_images_split_by_the_seed(tmp_path):
    first = prepare_all(make_params(tmp_path, {"val_count": 2}, seed=3), progress=False)
    data = tmp_path / "data"
    assert first["train"] + first["val"] >= 6 and first["val"] == 2
    names = sorted(p.name for p in (data / "hr").rglob("*.png"))
    expected_val = sorted(names[i] for i in np.random.default_rng(3).permutation(len(names))[:2])
    assert sorted(p.name for p in (data / "hr" / "val").iterdir()) == expected_val
    manifest = json.loads((data / "hr" / "manifest.json").read_text())
    for split in ("train", "val"):
        for name, digest in manifest["splits"][split].items():
            image = data / "hr" / split / name
            assert hashlib.sha256(image.read_bytes()).hexdigest() == digest
            pixels = read_image(image).astype(np.int16)
            assert np.abs(pixels[..., 0] - pixels[..., 2]).mean() > 2
    assert manifest["source"] == {"kind": "builtin", "collection": "photos", "optional": False}
    assert manifest["digest"] == first["digest"]


def test_reruns_are_byte_identical(tmp_path):
    source = {"kind": "builtin", "names": ["chelsea", "coffee", "rocket"]}
    prepare_all(make_params(tmp_path / "a", {"source": source}, seed=5), progress=False)
    prepare_all(make_params(tmp_path / "b", {"source": source}, seed=5), progress=False)
    first = snapshot(tmp_path / "a" / "data")
    assert len(first) == 4 and first == snapshot(tmp_path / "b" / "data")


def test_folder_source_skips_and_counts_bad_files(tmp_path, caplog):
    source = tmp_path / "hr"
    originals = {name: write_image(source / name, seed=i) for i, name in enumerate(["a.png", "b.png", "sub/c.png"])}
    write_image(source / "tiny.png", height=4, width=40)
    (source / "truncated.png").write_bytes((source / "a.png").read_bytes()[:200])
    (source / "notes.jpg").write_text("not an image")
    (source / "README.txt").write_text("ignored: not an image suffix")
    with caplog.at_level(logging.WARNING):
        summary = prepare_all(make_params(tmp_path, {"source": folder_source(source)}), progress=False)
    assert (summary["train"], summary["val"]) == (2, 1)
    assert (summary["skipped_unreadable"], summary["skipped_small"]) == (2, 1)
    for bad in ("truncated.png", "notes.jpg", "tiny.png"):
        assert bad in caplog.text
    hr = tmp_path / "data" / "hr"
    written = {p.name: read_image(p) for p in hr.rglob("*.png")}
    assert sorted(written) == ["a.png", "b.png", "sub__c.png"]
    assert np.array_equal(written["sub__c.png"], originals["sub/c.png"])
    manifest = json.loads((hr / "manifest.json").read_text())
    assert sorted(Path(p).name for p in manifest["skipped"]["unreadable"]) == ["notes.jpg", "truncated.png"]
    assert manifest["source"]["path"] == str(source)


def test_names_pick_images_from_a_folder(tmp_path):
    for i, name in enumerate(["a.png", "b.png", "c.png", "d.png"]):
        write_image(tmp_path / "hr" / name, seed=i)
    params = make_params(tmp_path, {"source": folder_source(tmp_path / "hr", names=["a", "c"])})
    assert prepare_all(params, progress=False)["train"] == 1
    with pytest.raises(PipelineError, match="names: no image called zebra"):
        prepare_all(make_params(tmp_path, {"source": folder_source(tmp_path / "hr", names=["zebra"])}),
                    progress=False)


def test_empty_or_unusable_folder_is_an_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(PipelineError, match=r"prepare.source gives no usable image \(0 found"):
        prepare_all(make_params(tmp_path, {"source": folder_source(tmp_path / "empty")}), progress=False)
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "x.png").write_text("junk")
    with pytest.raises(PipelineError, match=r"1 found, 1 unreadable"):
        prepare_all(make_params(tmp_path, {"source": folder_source(tmp_path / "junk")}), progress=False)


def test_too_few_images_for_the_validation_count(tmp_path):
    write_image(tmp_path / "hr" / "a.png")
    with pytest.raises(PipelineError, match="leaves none for training after val_count=1"):
        prepare_all(make_params(tmp_path, {"source": folder_source(tmp_path / "hr")}), progress=False)


def test_a_failed_run_leaves_the_previous_data_and_a_rerun_replaces_it(tmp_path):
    for i in range(3):
        write_image(tmp_path / "hr" / f"{i}.png", seed=i)
    good = make_params(tmp_path, {"source": folder_source(tmp_path / "hr")})
    prepare_all(good, progress=False)
    data = tmp_path / "data"
    before = snapshot(data)
    (tmp_path / "empty").mkdir()
    with pytest.raises(PipelineError):
        prepare_all(make_params(tmp_path, {"source": folder_source(tmp_path / "empty")}), progress=False)
    assert snapshot(data) == before
    assert sorted(p.name for p in data.iterdir()) == ["benchmarks", "hr"]
    (data / "hr" / "train" / "stale.png").write_bytes(b"old")
    prepare_all(good, progress=False)
    assert snapshot(data) == before


def test_missing_benchmark_is_skipped_only_when_optional(tmp_path, caplog):
    write_image(tmp_path / "hr" / "a.png")
    write_image(tmp_path / "hr" / "b.png", seed=1)
    write_image(tmp_path / "bench" / "small.png", height=10, width=12)
    benchmarks = {"Mine": folder_source(tmp_path / "bench"),
                  "Gone": folder_source(tmp_path / "nowhere", optional=True)}
    params = make_params(tmp_path, {"source": folder_source(tmp_path / "hr"), "benchmarks": benchmarks,
                                    "min_side": 16})
    with caplog.at_level(logging.WARNING):
        summary = prepare_all(params, progress=False)
    assert summary["benchmarks"] == {"Mine": 1}
    assert list(summary["benchmarks_skipped"]) == ["Gone"]
    assert caplog.text.count("prepare.benchmarks.Gone") >= 1 and len(caplog.records) == 1
    assert "optional=true" not in caplog.text, "an optional source must not be told to become optional"
    assert sorted(p.name for p in (tmp_path / "data" / "benchmarks").iterdir()) == ["Mine"]
    benchmarks["Gone"]["optional"] = False
    params = make_params(tmp_path, {"source": folder_source(tmp_path / "hr"), "benchmarks": benchmarks})
    with pytest.raises(PipelineError, match="prepare.benchmarks.Gone: folder .* does not exist"):
        prepare_all(params, progress=False)


def test_benchmark_name_must_be_a_folder_name(tmp_path):
    with pytest.raises(ConfigError, match=r"a name under 'prepare.benchmarks': '../up' is not a plain folder name"):
        make_params(tmp_path, {"source": small_hr(tmp_path), "benchmarks": {"../up": folder_source(tmp_path)}})
    assert not (tmp_path / "data").exists()


@pytest.mark.parametrize("name", ["Set5", "Set14"])
def test_real_benchmarks_are_copied_pixel_for_pixel(tmp_path, name):
    folder = SHARED / "benchmarks" / name
    if not folder.is_dir():
        pytest.skip(f"{folder} is absent (shared data is only beside the project checkout)")
    write_image(tmp_path / "hr" / "a.png")
    write_image(tmp_path / "hr" / "b.png", seed=1)
    params = make_params(tmp_path, {"source": folder_source(tmp_path / "hr"),
                                    "benchmarks": {name: folder_source(folder)}})
    summary = prepare_all(params, progress=False)
    originals = sorted(folder.glob("*.png"))
    assert summary["benchmarks"] == {name: len(originals)} and len(originals) in (5, 14)
    for original in originals:
        assert np.array_equal(read_image(tmp_path / "data" / "benchmarks" / name / original.name),
                              read_image(original))


@pytest.mark.parametrize("archive", ["hr.zip", "hr.tar.gz"])
def test_url_source_downloads_extracts_and_prepares(server, tmp_path, archive):
    files = {f"pack/HR/{i}.png": png_bytes(seed=i) for i in range(3)} | {"pack/LR/0.png": png_bytes(8, 8)}
    data = make_archive(server.root / archive, files).read_bytes()
    source = {"kind": "url", "url": server.url(archive), "sha256": hashlib.sha256(data).hexdigest(),
              "subdir": "pack/HR"}
    summary = prepare_all(make_params(tmp_path, {"source": source}), progress=False)
    assert (summary["train"], summary["val"]) == (2, 1)
    written = sorted((tmp_path / "data" / "hr").rglob("*.png"))
    assert sorted(p.name for p in written) == ["0.png", "1.png", "2.png"]
    for path in written:
        original = Image.open(io.BytesIO(files[f"pack/HR/{path.name}"]))
        assert np.array_equal(read_image(path), np.asarray(original))
    with pytest.raises(PipelineError, match="has no folder 'pack/GT'.*top level: pack"):
        prepare_all(make_params(tmp_path, {"source": {**source, "subdir": "pack/GT"}}), progress=False)


def test_preset_benchmark_resolves_to_its_archive_folder(server, tmp_path, monkeypatch):
    make_archive(server.root / "benchmark.tar", {f"benchmark/Set5/HR/{n}.png": png_bytes(seed=i)
                                                 for i, n in enumerate(["baby", "bird"])})
    monkeypatch.setitem(PRESETS, "Set5", Preset(server.url("benchmark.tar"), "benchmark/Set5/HR"))
    params = make_params(tmp_path, {"source": small_hr(tmp_path),
                                    "benchmarks": {"Set5": {"kind": "preset", "preset": "Set5"}}})
    assert prepare_all(params, progress=False)["benchmarks"] == {"Set5": 2}
    assert sorted(p.name for p in (tmp_path / "data" / "benchmarks" / "Set5").iterdir()) == ["baby.png", "bird.png"]


def test_unreachable_optional_benchmark_is_skipped(tmp_path):
    url = f"http://127.0.0.1:{closed_port()}/bench.zip"
    source = {"kind": "url", "url": url, "optional": True}
    params = make_params(tmp_path, {"source": small_hr(tmp_path), "benchmarks": {"Far": source}})
    assert list(prepare_all(params, progress=False)["benchmarks_skipped"]) == ["Far"]
    source["optional"] = False
    with pytest.raises(PipelineError, match=f"could not reach '{url}'"):
        prepare_all(make_params(tmp_path, {"source": small_hr(tmp_path), "benchmarks": {"Far": source}}),
                    progress=False)


def test_presets_sharing_an_unreachable_archive_are_tried_once_and_skipped_with_one_warning(
        tmp_path, monkeypatch, caplog):
    url = f"http://127.0.0.1:{closed_port()}/benchmark.tar"
    for name in ("Set5", "Set14"):
        monkeypatch.setitem(PRESETS, name, Preset(url, f"benchmark/{name}/HR"))
    tried = []
    import pipeline.data.prepare as prepare_module
    real_fetch = prepare_module.fetch_archive
    monkeypatch.setattr(prepare_module, "fetch_archive", lambda *a, **k: tried.append(a[0]) or real_fetch(*a, **k))
    write_image(tmp_path / "bench" / "b.png")
    benchmarks = {"Mine": folder_source(tmp_path / "bench"),
                  "Set5": {"kind": "preset", "preset": "Set5", "optional": True},
                  "Set14": {"kind": "preset", "preset": "Set14", "optional": True}}
    params = make_params(tmp_path, {"source": small_hr(tmp_path), "benchmarks": benchmarks})
    with caplog.at_level(logging.WARNING):
        summary = prepare_all(params, progress=False)
    assert tried == [url]
    assert summary["benchmarks"] == {"Mine": 1} and sorted(summary["benchmarks_skipped"]) == ["Set14", "Set5"]
    assert len(caplog.records) == 1
    assert "optional benchmarks Set14, Set5 skipped (used when available): could not reach" in caplog.text


def test_the_shipped_default_prepares_offline_with_the_builtin_benchmark(tmp_path, monkeypatch):
    """params.yaml as shipped, with Set5/Set14 unreachable: the Builtin benchmark is still there."""
    import yaml

    shipped = yaml.safe_load((Path(__file__).resolve().parents[2] / "params.yaml").read_text())
    url = f"http://127.0.0.1:{closed_port()}/benchmark.tar"
    for name in ("Set5", "Set14"):
        monkeypatch.setitem(PRESETS, name, Preset(url, f"benchmark/{name}/HR"))
    shipped["prepare"]["cache_dir"] = str(tmp_path / "cache")
    params = validate({**shipped, "data_dir": str(tmp_path / "data")})
    summary = prepare_all(params, progress=False)
    assert summary["benchmarks"] == {"Builtin": 7}
    assert sorted(summary["benchmarks_skipped"]) == ["Set14", "Set5"]
    hr_names = {p.name for p in (tmp_path / "data" / "hr").rglob("*.png")}
    bench_names = {p.name for p in (tmp_path / "data" / "benchmarks" / "Builtin").iterdir()}
    assert hr_names and not hr_names & bench_names
