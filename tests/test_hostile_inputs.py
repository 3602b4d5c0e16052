"""Hostile inputs and faults through the command line: each ends in one ``error:`` sentence and exit
status 2, runs no code from a model file, and leaves finished files as they were.

The cases are listed in docs/reliability.md, which ``test_every_case_in_the_reliability_table_has_a_test``
checks against this suite.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import re
import socket
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import mlflow
import numpy as np
import pytest
import torch
import yaml
from torch import nn

from pipeline.cli import main
from pipeline.config import Params
from pipeline.errors import PipelineError
from pipeline.imageio import write_png
from pipeline.mlflow_model import LOADER_MODULE
from pipeline.train.loop import fit
from pipeline.train.run_folder import run_folder_lock

ROOT = Path(__file__).resolve().parent.parent
QUIET = "-q"


class Payload:
    """Unpickling it runs ``touch <marker>``: the side effect proves whether code ran."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch '{self.marker}'",)


def refused(capsys, argv: list[str], pattern: str) -> str:
    """Run the CLI; assert exit status 2 and exactly one ``error:`` line matching ``pattern`` (no traceback)."""
    code = main([QUIET, *argv])
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert code == 2, err
    assert "Traceback" not in err and len(errors) == 1 and err.endswith(f"{errors[0]}\n"), err  # the last line
    assert re.fullmatch(f"error: {pattern}", errors[0]), errors[0]
    return errors[0]


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file below ``folder`` (relative path -> bytes)."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def image(path: Path, seed: int = 0) -> Path:
    write_png(path, np.random.default_rng(seed).integers(0, 256, (8, 8, 3), dtype=np.uint8))
    return path


def params_file(params: Params, path: Path) -> Path:
    path.write_text(yaml.safe_dump(params.model_dump(mode="json")))
    return path


# ------------------------------------------------------------------- 1. no code runs from an MLflow model
def test_a_pickled_mlflow_model_runs_no_code_when_upscaled(tmp_path, capsys):
    marker = tmp_path / "pwned"
    model = tmp_path / "model"
    mlflow.pytorch.save_model(nn.Conv2d(3, 3, 1), model, serialization_format="pickle", pip_requirements=["torch"])
    torch.save(Payload(marker), model / "data" / "model.pth")
    before = snapshot(tmp_path)
    for source in (str(model), model.as_uri()):
        refused(capsys, ["upscale", "--model", source, "--scale", "2", str(image(tmp_path / "in" / "a.png")),
                         "-o", str(tmp_path / "out")],
                r"MLflow model '.*model' is not an srloss weights-only model \(flavors: python_function, pytorch\); "
                r"it is refused because loading it could run code: pass a model logged by srloss training or a .pt "
                r"checkpoint")
    assert not marker.exists() and not (tmp_path / "out").exists()
    assert {k: v for k, v in snapshot(tmp_path).items() if not k.startswith("in/")} == before
    with contextlib.suppress(Exception):  # the same folder through MLflow's own loader does run the payload
        mlflow.pytorch.load_model(str(model))
    assert marker.exists()


def test_an_srloss_model_folder_with_a_pickle_payload_is_refused(tmp_path, capsys):
    marker = tmp_path / "pwned"
    weights = tmp_path / "weights.pt"
    torch.save({"meta": {"format": 1}, "model": Payload(marker)}, weights)
    mlflow.pyfunc.save_model(tmp_path / "model", loader_module=LOADER_MODULE, data_path=str(weights),
                             pip_requirements=["torch"])
    refused(capsys, ["upscale", "--model", str(tmp_path / "model"), "--scale", "2", str(image(tmp_path / "a.png")),
                     "-o", str(tmp_path / "out")],
            r"checkpoint '.*weights.pt' holds more than weights and plain data .*; it is refused for safety, use a "
            r"checkpoint written by this pipeline")
    assert not marker.exists() and not (tmp_path / "out").exists()


def test_model_data_outside_the_model_folder_is_refused(tiny_checkpoint, tmp_path, capsys):
    mlflow.pyfunc.save_model(tmp_path / "model", loader_module=LOADER_MODULE, data_path=str(tiny_checkpoint),
                             pip_requirements=["torch"])
    mlmodel = tmp_path / "model" / "MLmodel"
    mlmodel.write_text(re.sub(r"data: \S+", f"data: ../../{tiny_checkpoint.relative_to(tmp_path.parent)}",
                              mlmodel.read_text()))
    refused(capsys, ["upscale", "--model", str(tmp_path / "model"), "--scale", "2", str(image(tmp_path / "a.png")),
                     "-o", str(tmp_path / "out")],
            r"MLflow model '.*' is not an srloss weights-only model \(its data '.*' is not a file inside the "
            r"model\); .*")


def test_a_legitimate_model_folder_upscales(tiny_checkpoint, tmp_path, capsys):
    mlflow.pyfunc.save_model(tmp_path / "model", loader_module=LOADER_MODULE, data_path=str(tiny_checkpoint),
                             pip_requirements=["torch"])
    assert main([QUIET, "upscale", "--model", str(tmp_path / "model"), "--scale", "2",
                 str(image(tmp_path / "a.png")), "-o", str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / "a.png").is_file()


# -------------------------------------------------------------- 3. nothing finished is silently replaced
def test_train_into_a_finished_run_is_refused_and_keeps_its_checkpoints(tiny_checkpoint, tmp_path, capsys):
    run = tmp_path / "finished"
    (run / "checkpoints").mkdir(parents=True)
    for name in ("best.pt", "last.pt"):
        (run / "checkpoints" / name).write_bytes(tiny_checkpoint.read_bytes())
    before = snapshot(run)
    refused(capsys, ["train", "--set", "tracking.enabled=false", "--run-dir", str(run)],
            rf"run folder '{run}' already holds last.pt and best.pt of an earlier run; pass --resume to continue it, "
            r"--overwrite to replace it, or another --run-dir")
    refused(capsys, ["train", "--set", "tracking.enabled=false", "--run-dir", str(run), "--resume", "--overwrite"],
            r"--resume continues a run and --overwrite replaces it; pass only one of them")
    assert snapshot(run) == before


def test_a_second_training_into_a_locked_run_folder_is_refused(tiny_data, tmp_path, capsys):
    run = tmp_path / "run"
    with run_folder_lock(run):  # another training holds the folder
        refused(capsys, ["train", "--params", str(params_file(tiny_data, tmp_path / "p.yaml")), "--run-dir", str(run)],
                rf"run folder '{run}' is in use by another training; wait for it to finish or pass another --run-dir")
    assert sorted(p.name for p in run.iterdir()) == [".lock"]


def test_the_run_folder_lock_dies_with_its_process(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from pathlib import Path; "
                               "from pipeline.train.run_folder import run_folder_lock\n"
                               "with run_folder_lock(Path(sys.argv[1])):\n print('held', flush=True); time.sleep(60)",
                               str(tmp_path / "run")], stdout=subprocess.PIPE, text=True, cwd=ROOT,
                              env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(PipelineError, match="is in use by another training"), run_folder_lock(tmp_path / "run"):
            pass
    finally:
        holder.kill()  # SIGKILL: no cleanup runs in the holder
        holder.wait()
    with run_folder_lock(tmp_path / "run"):
        pass


def test_upscale_never_writes_over_an_input(tiny_checkpoint, tmp_path, capsys):
    folder = tmp_path / "img"
    image(folder / "a.png")
    before = snapshot(folder)
    refused(capsys, ["upscale", "--model", str(tiny_checkpoint), "--scale", "2", str(folder / "a.png"), "-o",
                     str(folder)],
            rf"the output for '{folder / 'a.png'}' would be written over the input image '{folder / 'a.png'}'; "
            r"pass an --output folder that holds none of the inputs")
    refused(capsys, ["upscale", "--model", str(tiny_checkpoint), "--scale", "2", str(folder), "-o", str(folder)],
            r"the output for .* would be written over the input image .*")
    assert snapshot(folder) == before


# ------------------------------------------------------------ 4. faults end in one sentence, exit 2
def test_a_full_disk_while_upscaling_is_one_sentence_and_leaves_no_partial_file(tiny_checkpoint, tmp_path, capsys,
                                                                                monkeypatch):
    from PIL import Image

    def full(self, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(args[0]))

    source = image(tmp_path / "a.png")
    monkeypatch.setattr(Image.Image, "save", full)
    refused(capsys, ["upscale", "--model", str(tiny_checkpoint), "--scale", "2", str(source), "-o",
                     str(tmp_path / "out")],
            r"the disk is full at '.*\.png\.tmp' \(No space left on device\); free space and run the command again "
            r"\(finished files are kept, partly written ones were removed\)")
    assert list((tmp_path / "out").iterdir()) == []


def test_a_full_disk_while_preparing_is_one_sentence_and_keeps_the_previous_data(tmp_path, capsys, monkeypatch):
    from PIL import Image

    data = tmp_path / "data"
    image(data / "hr" / "train" / "earlier.png")
    before = snapshot(data)

    def full(self, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(args[0]))

    monkeypatch.setattr(Image.Image, "save", full)
    refused(capsys, ["prepare", "--set", f"data_dir={data}", "--set", "prepare.benchmarks={}"],
            r"the disk is full at '.*' \(No space left on device\); free space and run the command again "
            r"\(finished files are kept, partly written ones were removed\)")
    assert snapshot(data) == before and sorted(p.name for p in tmp_path.iterdir()) == ["data"]


def test_a_full_disk_while_training_is_one_sentence_and_keeps_the_last_checkpoint(tiny_data, tmp_path, capsys,
                                                                                 monkeypatch):
    from pipeline.train import checkpoint as checkpoint_module

    params = params_file(tiny_data, tmp_path / "p.yaml")
    run = tmp_path / "run"
    real_save = torch.save
    saved: list[int] = []

    def fills_the_disk(state, handle):
        if saved:  # the first checkpoint fits, the second does not
            handle.write(b"half a checkpoint")
            raise OSError(errno.ENOSPC, "No space left on device")
        saved.append(state["iteration"])
        real_save(state, handle)

    monkeypatch.setattr(checkpoint_module.torch, "save", fills_the_disk)
    refused(capsys, ["train", "--params", str(params), "--run-dir", str(run)],
            rf"checkpoint '{run}/checkpoints/.*\.pt' could not be written \(No space left on device\); the previous "
            r"one is intact: free disk space, then continue with --resume")
    files = sorted(p.name for p in (run / "checkpoints").iterdir())
    assert files == ["best.pt"] and saved == [6]  # best.pt of iteration 6 was written, its last.pt was not
    assert torch.load(run / "checkpoints" / files[0], weights_only=True)["iteration"] == 6


def test_a_full_disk_while_building_the_image_store_is_one_sentence_and_leaves_no_half_store(tiny_data, tmp_path,
                                                                                               capsys, monkeypatch):
    from pipeline.data import image_store

    def no_space(*args):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(image_store.os, "posix_fallocate", no_space)
    params = params_file(tiny_data, tmp_path / "p.yaml")
    refused(capsys, ["train", "--params", str(params), "--run-dir", str(tmp_path / "run")],
            r"could not build the image store in '.*/store/bicubic/x2/train': there is no space left; free space there "
            r"or set train.image_store: memory to decode the images into each process")
    assert [p.name for p in (tiny_data.data_dir / "store" / "bicubic" / "x2" / "train").iterdir()] == [".lock"]
    assert not (tmp_path / "run" / "checkpoints").exists()


@pytest.mark.parametrize("content, pattern", [
    ("train: [unclosed", r"'.*bad.yaml' is not valid YAML \(expected ',' or '\]', but got '<stream end>' at line 1, "
                         r"column 17\); fix the file"),
    ("- a list", r"'.*bad.yaml' must hold a mapping of sections \(seed, prepare, train, ...\)"),
    (b"\xff\xfe binary", r"'.*bad.yaml' is not a UTF-8 text file \(invalid start byte at byte 0\); pass a YAML params "
                         r"file"),
])
def test_a_broken_params_file_is_one_sentence(tmp_path, capsys, content, pattern):
    (tmp_path / "bad.yaml").write_bytes(content if isinstance(content, bytes) else content.encode())
    message = refused(capsys, ["config", "--params", str(tmp_path / "bad.yaml")], pattern)
    assert "\n" not in message


def test_a_damaged_checkpoint_or_data_manifest_is_one_sentence(tiny_checkpoint, tiny_data, tmp_path, capsys,
                                                               monkeypatch):
    broken = tmp_path / "broken.pt"
    broken.write_bytes(tiny_checkpoint.read_bytes()[:200])
    with monkeypatch.context() as patch:
        patch.chdir(tmp_path)  # no models/ here: the hint names the patterns (after `make repro` the project has some)
        refused(capsys, ["upscale", "--model", str(broken), "--scale", "2", str(image(tmp_path / "a.png")), "-o",
                         str(tmp_path / "out")],
                rf"model '{broken}' is not a checkpoint \(not a torch archive: another kind of file, or truncated\); "
                r"pass models/<objective>/best.pt .*")
    manifest = Path(tiny_data.data_dir) / "hr" / "manifest.json"
    manifest.write_text('{"train/img0.png": ')
    refused(capsys, ["train", "--params", str(params_file(tiny_data, tmp_path / "p.yaml")), "--run-dir",
                     str(tmp_path / "new")],
            rf"data manifest '{manifest}' is damaged \(.*\); run the prepare and degrade stages again "
            r"\(`dvc repro degrade`\)")
    assert not (tmp_path / "new" / "checkpoints").exists()


def test_an_image_claiming_a_huge_size_is_skipped_not_decoded(tiny_checkpoint, tmp_path, capsys, caplog):
    """A 68-byte PNG whose header says 30000 x 30000 (a decompression bomb) is refused unread."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 30000, 30000, 8, 2, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(b"\0" * 10)) + chunk(b"IEND", b""))
    with caplog.at_level(logging.WARNING):
        refused(capsys, ["upscale", "--model", str(tiny_checkpoint), "--scale", "2", str(bomb), "-o",
                         str(tmp_path / "out")],
                r"none of the 1 input images could be read; check the files given to upscale")
    assert "is refused as a possible decompression bomb (Image size (900000000 pixels) exceeds limit" in caplog.text
    assert list((tmp_path / "out").glob("*")) == []


@pytest.mark.parametrize("damage, reason", [
    (lambda checkpoint: checkpoint["meta"].pop("model"), r"'model'"),
    (lambda checkpoint: checkpoint["model"].update({"head.weight": torch.zeros(3)}), r"Error\(s\) in loading .*"),
    (lambda checkpoint: checkpoint["meta"]["model"].update(args={"n_feats": 4}), r"Error\(s\) in loading .*"),
], ids=["meta-without-model", "unexpected-weight", "weights-of-another-size"])
def test_a_checkpoint_that_does_not_fit_its_meta_is_one_sentence(tiny_checkpoint, tmp_path, capsys, damage, reason):
    checkpoint = torch.load(tiny_checkpoint, weights_only=True)
    damage(checkpoint)
    torch.save(checkpoint, tmp_path / "odd.pt")
    refused(capsys, ["upscale", "--model", str(tmp_path / "odd.pt"), "--scale", "2", str(image(tmp_path / "a.png")),
                     "-o", str(tmp_path / "out")],
            rf"checkpoint '.*odd.pt' does not rebuild its networks \({reason}\); use one written by `python -m "
            r"pipeline train`")
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------------ 5. an unreachable tracking server
def test_upscale_from_an_unreachable_tracking_server_fails_within_seconds(tmp_path, capsys, monkeypatch):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.delenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", raising=False)
    started = time.monotonic()
    refused(capsys, ["upscale", "--model", "runs:/0123/l1-seed0", "--tracking-uri", f"http://127.0.0.1:{port}",
                     "--scale", "2", str(image(tmp_path / "a.png")), "-o", str(tmp_path / "out")],
            rf"MLflow tracking server http://127.0.0.1:{port} is unreachable \(.*\); start it, fix tracking.uri / "
            r"MLFLOW_TRACKING_URI, or set tracking.enabled=false")
    assert time.monotonic() - started < 10 and not (tmp_path / "out").exists()


# ----------------------------------------------------------------------- 6. params checked at load time
@pytest.mark.parametrize("override, pattern", [
    ("model.name=nope", r"params: unknown model 'nope'; choose one of: dbpn, edsr, .*"),
    ("loss.objective=nope", r"params: unknown objective 'nope'; choose one of: cs, fcs, .*"),
    ("loss.terms={nope: 1.0}", r"params: unknown loss term 'nope'; choose one of: charbonnier, .*"),
    ("model.args.nope=1", r"params: model 'edsr' has no argument 'nope'; allowed: n_blocks, n_feats, res_scale"),
    ("loss.terms={l1: {weight: 1, nope: 2}}", r"params: loss term 'l1' has no option 'nope'; allowed: none"),
    ("sweep.objectives={x: {loss: {terms: {nope: 1}}}}", r"sweep.objectives.x: unknown loss term 'nope'; .*"),
    ("evaluate.decodes={fine_grained: [mode]}",
     r"evaluate.decodes.fine_grained: 'mode' is not a decode of objective 'fine_grained' \(it has anchor, expectation\)"),
    ("evaluate.decodes={l1: [anchor]}",
     r"evaluate.decodes.l1: 'anchor' is not a decode of objective 'regression' \(it has only its own\)"),
])
def test_config_refuses_names_the_registries_lack(capsys, override, pattern):
    refused(capsys, ["config", "--set", override], pattern + r"; fix it in params.yaml or with --set")


def test_set_accepts_the_dvc_exp_run_syntax(capsys):
    assert main([QUIET, "config", "--set", "+train.lr=0.001", "--set", "++seed=3", "--set", "~model.args"]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert (printed["train"]["lr"], printed["seed"], printed["model"]["args"]) == (0.001, 3, {})


# ---------------------------------------------------------------------------- 8. orphaned temp files
def test_orphaned_checkpoint_temp_files_are_removed_by_the_next_run(tiny_data, tmp_path):
    checkpoints = tmp_path / "run" / "checkpoints"
    checkpoints.mkdir(parents=True)
    orphans = [checkpoints / ".last.pt.k1ll3d.tmp", checkpoints / ".best.pt.x.tmp"]
    for orphan in orphans:
        orphan.write_bytes(b"half a checkpoint")
    keep = checkpoints / "notes.tmp"
    keep.write_text("not ours")
    tiny_data.train.iterations = 2
    fit(tiny_data, tmp_path / "run")
    assert sorted(p.name for p in checkpoints.iterdir()) == ["best.pt", "last.pt", "notes.tmp"]


# ------------------------------------------------------------------------------- the reliability table
def test_every_case_in_the_reliability_table_has_a_test():
    table = (ROOT / "docs" / "reliability.md").read_text()
    named = re.findall(r"`(tests/[\w/]+\.py)::(test_\w+)`", table)
    assert len(named) >= 20
    for path, name in named:
        assert re.search(rf"^def {name}\(", (ROOT / path).read_text(), re.M), f"{path}::{name} is not a test"
