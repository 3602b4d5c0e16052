"""Careless and hostile inputs of issue 19, through the command line: each ends in one ``error:``
sentence naming the key, line or file, exit status 2, and the files on disk as they were; images come
out the way they went in (upright, with their alpha, greyscale as greyscale).

The cases are listed in docs/reliability.md (rows 9-15)."""

from __future__ import annotations

import base64
import logging
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from pipeline.imageio import read_image
from tests.data.conftest import server  # noqa: F401  (a fixture: a 127.0.0.1 HTTP server)
from tests.test_hostile_inputs import refused, snapshot

ROOT = Path(__file__).resolve().parent.parent
FOLDER_RULE = (r"is not a plain folder name \(it becomes a folder, so it must be 1-100 letters, digits, '_', '-' or "
               r"'.', not starting with '.'; e.g. 'study'\)")


def params_text(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "params.yaml"
    path.write_text(text)
    return path


# ------------------------------------------------------------ names that become paths
@pytest.mark.parametrize("override, pattern", [
    ('sweep.name=""', rf"params.yaml: 'sweep.name': '' {FOLDER_RULE}; fix it in params.yaml or with --set sweep.name=..."),
    ("sweep.name=.", rf"params.yaml: 'sweep.name': '.' {FOLDER_RULE}; .*"),
    ("sweep.name=../../home", rf"params.yaml: 'sweep.name': '../../home' {FOLDER_RULE}; .*"),
    ("sweep.objectives={'../x': {}}", rf"params.yaml: a name under 'sweep.objectives': '../x' {FOLDER_RULE}; rename it"),
    ("prepare.benchmarks={'/etc': {kind: builtin}}",
     rf"params.yaml: a name under 'prepare.benchmarks': '/etc' {FOLDER_RULE}; rename it"),
    ("degrade.presets={'a/b': {}}", rf"params.yaml: a name under 'degrade.presets': 'a/b' {FOLDER_RULE}; rename it"),
])
def test_a_name_that_becomes_a_folder_must_be_one_plain_folder_name(tmp_path, monkeypatch, capfd, override, pattern):
    """``sweep.name=""`` deleted every file under sweep.storage_path (with ``storage_path: .`` the project).
    ``capfd``: the sweep command runs itself in a session of its own (``pipeline.own_session``)."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "params.yaml").write_text("sweep: {storage_path: .}\n")
    (tmp_path / "keep.txt").write_text("finished work")
    before = snapshot(tmp_path)
    refused(capfd, ["sweep", "--set", override], pattern)
    assert snapshot(tmp_path) == before


# --------------------------------------------------------------- malformed params files
@pytest.mark.parametrize("text, pattern", [
    ("train:\n  lr: 0.1\ntrain:\n  lr: 0.2\n",
     r"'.*params.yaml': the key 'train' appears twice in one section \(lines 1 and 3\), and only the later would "
     r"count; keep one"),
    ("sweep:\n  objectives:\n    l1: {}\n    l1: {loss: {terms: {l1: 2}}}\n",
     r"'.*params.yaml': the key 'l1' appears twice in one section \(lines 3 and 4\), .*"),
    ("seed: " + "[" * 20000 + "]" * 20000 + "\n",
     r"'.*params.yaml': line 1 nests deeper than 64 levels; params need a few, so flatten it"),
    ("train:\n  betas: [.nan, 0.99]\n",
     r"params.yaml: 'train.betas': each Adam beta must be a number in \[0, 1\), e.g. \[0.9, 0.99\]; fix it in "
     r"params.yaml or with --set train.betas=..."),
    ("train:\n  betas: [2, -1]\n", r"params.yaml: 'train.betas': each Adam beta must be a number in \[0, 1\).*"),
    ("seed: 100000000000000000000000\n",
     r"params.yaml: 'seed': Input should be less than 4294967296 \(got 100000000000000000000000\); .*"),
    ("seed: -1\n", r"params.yaml: 'seed': Input should be greater than or equal to 0 \(got -1\); .*"),
    ("evaluate:\n  tile: 16\n  tile_overlap: 8\n",
     r"params.yaml: evaluate.tile \(16\) must be larger than twice evaluate.tile_overlap \(8\); raise evaluate.tile "
     r"or lower evaluate.tile_overlap"),
    ("evaluate:\n  scales: [2, 5]\n",
     r"params.yaml: evaluate.scales \[5\] has no LR images: degrade.scales makes only \[2, 3, 4\]; add them to "
     r"degrade.scales or drop them from evaluate.scales"),
    ("degrade:\n  scales: [3]\nevaluate:\n  scales: [3]\n", r"params.yaml: train.scale 2 has no LR images: degrade.scales makes only \[3\]; .*"),
])
@pytest.mark.parametrize("command", ["config", "evaluate"])
def test_a_malformed_params_file_is_one_sentence_naming_the_key_or_line(tmp_path, capsys, text, pattern, command):
    params = params_text(tmp_path, text)
    before = snapshot(tmp_path)
    refused(capsys, [command, "--params", str(params)], pattern)
    assert snapshot(tmp_path) == before


def test_an_alias_bomb_fails_fast_in_bounded_memory(tmp_path):
    """Nine levels of nine aliases: 4 GB and a hang before; now refused from the composed nodes."""
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 10)]
    params = params_text(tmp_path, "loss:\n  args:\n" + "".join(f"    {line}\n" for line in lines))
    started = time.monotonic()
    own_peak = ("import resource, sys\nfrom pipeline.cli import main\ncode = main(sys.argv[1:])\n"
                "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)\nsys.exit(code)")  # this process alone
    done = subprocess.run([sys.executable, "-c", own_peak, "-q", "config", "--params", str(params)],
                          capture_output=True, text=True, timeout=120, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert done.returncode == 2, done.stderr
    assert done.stderr == (f"error: '{params}': line 8 expands to more than 100000 values through YAML aliases "
                           "(*name); write the values out instead\n")
    assert time.monotonic() - started < 60
    assert int(done.stdout.split()[-1]) < 3 * 2**20  # KiB: under 3 GiB (measured 1.9 GiB peak in the full suite; 4 GB and a hang before)


def test_an_override_value_gets_the_same_limits(capsys):
    refused(capsys, ["config", "--set", "loss.args={a: 1, a: 2}"],
            r"override 'loss.args=\{a: 1, a: 2\}': the value: the key 'a' appears twice in one section "
            r"\(lines 1 and 1\), and only the later would count; keep one")


# ------------------------------------------------------------------------- images
def exif_jpeg(path: Path, pixels: np.ndarray, orientation: int) -> Path:
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(pixels).save(path, quality=100, exif=exif.tobytes())
    return path


def test_exif_orientation_is_applied_where_images_are_read(tmp_path):
    """A phone's portrait photo is stored landscape with orientation 6 (turn 90 degrees clockwise)."""
    stored = np.zeros((16, 32, 3), np.uint8)
    stored[:, :8] = 255  # the left quarter white: the top once turned clockwise
    photo = exif_jpeg(tmp_path / "portrait.jpg", stored, 6)
    upright = read_image(photo)
    assert upright.shape == (32, 16, 3)
    assert upright[:8].mean() > 240 and upright[8:].mean() < 15
    from pipeline.imageio import image_size
    assert image_size(photo) == (32, 16)


def test_upscale_keeps_the_orientation_alpha_and_greyscale(tiny_checkpoint, tmp_path, caplog):
    rng = np.random.default_rng(0)
    inputs = tmp_path / "in"
    inputs.mkdir()
    rgba = rng.integers(0, 256, (8, 10, 4), dtype=np.uint8)
    rgba[..., 3] = 120  # 47% transparent
    Image.fromarray(rgba, "RGBA").save(inputs / "clear.png")
    Image.fromarray(rng.integers(0, 256, (8, 10), dtype=np.uint8), "L").save(inputs / "grey.png")
    exif_jpeg(inputs / "portrait.jpg", rng.integers(0, 256, (8, 12, 3), dtype=np.uint8), 6)
    from pipeline.cli import main
    with caplog.at_level(logging.INFO, logger="pipeline.upscale"):
        assert main(["upscale", "--model", str(tiny_checkpoint), "--scale", "2", str(inputs), "-o",
                     str(tmp_path / "out")]) == 0
    err = caplog.text
    with Image.open(tmp_path / "out" / "clear.png") as clear:
        assert clear.mode == "RGBA" and clear.size == (20, 16)
        assert np.asarray(clear)[..., 3].tolist() == np.full((16, 20), 120).tolist()
    with Image.open(tmp_path / "out" / "grey.png") as grey:
        assert grey.mode == "L" and grey.size == (20, 16)
    with Image.open(tmp_path / "out" / "portrait.png") as portrait:
        assert portrait.mode == "RGB" and portrait.size == (16, 24)
    assert "clear.png has an alpha channel: the colours are super-resolved and the alpha is upscaled with bicubic" in err
    assert "grey.png is greyscale: the network's RGB output is written as greyscale (its luma)" in err


# ------------------------------------------------------------------ checkpoints
def test_a_truncated_last_checkpoint_with_resume_names_the_file(tiny_data, tmp_path, capsys):
    run_dir = tmp_path / "run"
    (run_dir / "checkpoints").mkdir(parents=True)
    params = tmp_path / "p.yaml"
    params.write_text(yaml.safe_dump(tiny_data.model_dump(mode="json")))
    from pipeline.cli import main
    assert main(["-q", "train", "--params", str(params), "--run-dir", str(run_dir), "--set", "tracking.enabled=false"]) == 0
    capsys.readouterr()
    last = run_dir / "checkpoints" / "last.pt"
    whole = last.read_bytes()
    for cut in (len(whole) // 2, len(whole) - 100, 30):
        last.write_bytes(whole[:cut])
        refused(capsys, ["train", "--params", str(params), "--run-dir", str(run_dir), "--resume", "--set",
                         "tracking.enabled=false"],
                rf"checkpoint '{last}' is unreadable \(.*\); it is truncated or not a checkpoint, use another one "
                r"\(e.g. best.pt or last.pt of the run\)")
        assert last.read_bytes() == whole[:cut]


def test_an_absurd_batch_size_is_refused_before_training(tiny_data, tmp_path, capsys):
    params = tmp_path / "p.yaml"
    params.write_text(yaml.safe_dump(tiny_data.model_dump(mode="json")))
    refused(capsys, ["train", "--params", str(params), "--run-dir", str(tmp_path / "run"), "--set",
                     "train.batch_size=10000000", "--set", "tracking.enabled=false"],
            r"train.batch_size 10000000 needs at least .* GiB for the batch's images alone, more than the .* GiB "
            r"of memory available; lower train.batch_size or train.patch_size")
    assert not (tmp_path / "run" / "checkpoints").exists()



# ------------------------------------------------------------------------ secrets
SECRET = "s3cr3t"


@pytest.mark.parametrize("uri, shown", [
    ("http://alice:s3cr3t@127.0.0.1:5917", "http://alice:***@127.0.0.1:5917"),
    ("https://ghp_s3cr3t@github.com/a/b.zip", "https://***@github.com/a/b.zip"),
    ("https://h.example/photos.zip?token=s3cr3t&dl=1#x", "https://h.example/photos.zip?token=***&dl=***#x"),
    ("s3://bucket/key?X-Amz-Signature=s3cr3t", "s3://bucket/key?X-Amz-Signature=***"),
    ("http://127.0.0.1:5000", "http://127.0.0.1:5000"),
    ("sqlite:////tmp/mlflow.db", "sqlite:////tmp/mlflow.db"),
])
def test_credentials_in_a_uri_are_masked_and_the_rest_kept(uri, shown):
    from pipeline.redact import redact_data, redact_text, redact_uri
    assert redact_uri(uri) == shown
    assert redact_text(f"could not reach '{uri}' (refused); check it") == f"could not reach '{shown}' (refused); check it"
    assert redact_data({"a": [uri, 3], "b": None}) == {"a": [shown, 3], "b": None}


def test_a_signed_download_url_is_neither_printed_nor_written(server, tmp_path, caplog):
    """The token of a signed URL was printed in the missing-sha256 warning and written to data/hr/manifest.json,
    which every training logs to MLflow."""
    from tests.data.conftest import make_archive, png_bytes
    make_archive(server.root / "photos.zip", {f"{i}.png": png_bytes(seed=i) for i in range(3)})
    url = server.url(f"photos.zip?token={SECRET}")
    params = params_text(tmp_path, yaml.safe_dump({
        "data_dir": "data", "prepare": {"source": {"kind": "url", "url": url}, "val_count": 1, "min_side": 8,
                                        "cache_dir": "cache"}}))
    from pipeline.cli import main
    with caplog.at_level(logging.INFO):
        assert main(["prepare", "--params", str(params)]) == 0
    assert "photos.zip?token=***" in caplog.text and "no sha256 is configured" in caplog.text
    assert SECRET not in caplog.text
    written = {path: path.read_bytes() for path in (tmp_path / "data").rglob("*") if path.is_file()}
    assert tmp_path / "data" / "hr" / "manifest.json" in written
    assert not [path for path, data in written.items() if SECRET.encode() in data]
    assert "photos.zip?token=***" in (tmp_path / "data" / "hr" / "manifest.json").read_text()


def test_a_tracking_password_is_in_no_checkpoint(tiny_data, tmp_path, caplog):
    """With tracking off, tracking.uri was saved in every checkpoint's meta.params (models/, logged models)."""
    params = tmp_path / "p.yaml"
    params.write_text(yaml.safe_dump(tiny_data.model_dump(mode="json")))
    from pipeline.cli import main
    assert main(["-q", "train", "--params", str(params), "--run-dir", str(tmp_path / "run"), "--set",
                 "tracking.enabled=false", "--set", f"tracking.uri=http://alice:{SECRET}@127.0.0.1:5917"]) == 0
    from pipeline.train.checkpoint import load_checkpoint
    for name in ("best.pt", "last.pt"):
        meta = load_checkpoint(tmp_path / "run" / "checkpoints" / name)["meta"]
        assert meta["params"]["tracking"]["uri"] == "http://alice:***@127.0.0.1:5917"
    assert main(["-q", "train", "--params", str(params), "--run-dir", str(tmp_path / "run"), "--resume", "--set",
                 "tracking.enabled=false", "--set", f"tracking.uri=http://alice:{SECRET}@127.0.0.1:5917",
                 "--set", "train.iterations=14"]) == 0
    assert caplog.text.rstrip().endswith("with changed params: train.iterations")  # the masked uri is no difference
    assert SECRET not in caplog.text


class BasicAuthHealth(BaseHTTPRequestHandler):
    """Answers ``/health`` 200 only with ``alice``'s basic-auth password, 401 otherwise; records what it got."""

    seen: list[str | None] = []

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        self.seen.append(self.headers.get("Authorization"))
        good = self.headers.get("Authorization") == "Basic " + base64.b64encode(f"alice:{SECRET}".encode()).decode()
        self.send_response(200 if good and self.path == "/health" else 401)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def test_a_tracking_password_reaches_the_server_and_no_message(tmp_path, capsys):
    """urllib took ``alice:…@127.0.0.1`` for the host, so a reachable server was reported unreachable, and the
    sentence printed the password."""
    from pipeline.tracking.store import check_tracking
    from tests.data.conftest import closed_port
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), BasicAuthHealth)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        check_tracking(f"http://alice:{SECRET}@127.0.0.1:{httpd.server_address[1]}")
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=10)
    assert BasicAuthHealth.seen == ["Basic " + base64.b64encode(f"alice:{SECRET}".encode()).decode()]
    port = closed_port()
    params = tmp_path / "params.yaml"
    params.write_text("{}\n")
    refused(capsys, ["train", "--params", str(params), "--run-dir", str(tmp_path / "run"), "--set",
                     f"tracking.uri=http://alice:{SECRET}@127.0.0.1:{port}"],
            rf"MLflow tracking server http://alice:\*\*\*@127.0.0.1:{port} is unreachable \(.*\); start it, fix "
            r"tracking.uri / MLFLOW_TRACKING_URI, or set tracking.enabled=false")
    assert not (tmp_path / "run").exists()


def test_params_sent_to_mlflow_hold_no_credentials():
    from pipeline.redact import redact_data
    from pipeline.tracking.store import flatten_params
    tree = {"tracking": {"uri": f"http://alice:{SECRET}@h:5000"}, "prepare": {"source": {"url": f"https://h/a.zip?sig={SECRET}"}}}
    flat = flatten_params(redact_data(tree))
    assert flat == {"tracking.uri": "http://alice:***@h:5000", "prepare.source.url": "https://h/a.zip?sig=***"}


def test_a_decode_row_may_not_take_an_objectives_name(tmp_path, capsys):
    params = params_text(tmp_path, "sweep:\n  objectives:\n    fine_grained: {loss: {objective: fine_grained, terms: {}}}\n"
                                   "    fine_grained.anchor: {loss: {terms: {l1: 1.0}}}\n"
                                   "evaluate:\n  decodes: {fine_grained: [anchor]}\n")
    refused(capsys, ["config", "--params", str(params)],
            r"evaluate.decodes.fine_grained: the row 'fine_grained.anchor' of this decode has the name of a sweep "
            r"objective; rename that objective")
