"""``python -m pipeline weights fetch`` against a local HTTP server: pinned prefixes, no partial files."""

from __future__ import annotations

import hashlib
import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Iterator

import pytest
import torch

from pipeline.cli import main
from pipeline.config import FidConfig, LpipsConfig
from pipeline.metrics.fid_metric import WEIGHTS_FILE, hub_checkpoint
from pipeline.metrics.lpips_metric import BACKBONES, hub_checkpoint_path
from pipeline.metrics.weights import WEIGHTS, Weights, fetch_one


class _Handler(BaseHTTPRequestHandler):
    """Serves ``server.files``; with ``server.cut`` it announces every byte but sends only half, then closes."""

    server: "_Server"

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        data = self.server.files.get(self.path.rsplit("/", 1)[-1])
        if data is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data[:len(data) // 2] if self.server.cut else data)
        self.close_connection = True

    def log_message(self, *args: object) -> None:
        pass


class _Server(ThreadingHTTPServer):
    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.files: dict[str, bytes] = {}
        self.cut = False

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/weights"


@pytest.fixture
def server() -> Iterator[_Server]:
    httpd = _Server()
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()
    thread.join(timeout=5)


@pytest.fixture
def hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    return tmp_path / "torch" / "hub" / "checkpoints"


def _bytes_with_prefix(prefix: str) -> bytes:
    """Bytes whose sha256 starts with ``prefix`` (found by counting; a few-hex prefix for speed)."""
    for counter in range(1 << 24):
        data = counter.to_bytes(4, "little") * 64
        if hashlib.sha256(data).hexdigest().startswith(prefix):
            return data
    raise AssertionError(prefix)


TEST_WEIGHTS = Weights("toy-ab1.pth", "http://unused.invalid/", "test")


def test_pinned_names_are_the_ones_the_metrics_look_for():
    assert WEIGHTS["fid"].file_name == WEIGHTS_FILE
    for net, backbone in BACKBONES.items():
        assert WEIGHTS[f"lpips-{net}"].file_name == backbone.file_name
        assert WEIGHTS[f"lpips-{net}"].base_url + backbone.file_name == backbone.url
    assert WEIGHTS["lpips-alex"].sha256_prefix == "7be5be79"


def test_fetch_stores_where_evaluate_looks(server, hub, capsys, monkeypatch):
    data = _bytes_with_prefix("ab1")
    server.files[TEST_WEIGHTS.file_name] = data
    monkeypatch.setitem(WEIGHTS, "toy", TEST_WEIGHTS)
    assert main(["-q", "weights", "fetch", "toy", "--base-url", server.url]) == 0
    assert json.loads(capsys.readouterr().out) == {"toy": str(hub / "toy-ab1.pth")}
    assert sorted(p.name for p in hub.iterdir()) == ["toy-ab1.pth"] and (hub / "toy-ab1.pth").read_bytes() == data
    server.files.clear()  # a second fetch verifies the cached file and downloads nothing
    assert fetch_one(TEST_WEIGHTS, server.url, 5, False) == hub / "toy-ab1.pth"
    assert hub_checkpoint() == hub / WEIGHTS_FILE
    assert hub_checkpoint_path(LpipsConfig().net) == hub / WEIGHTS["lpips-alex"].file_name


def test_cli_fetch_refuses_a_wrong_checksum_and_keeps_nothing(server, hub, capsys):
    for weights in WEIGHTS.values():
        server.files[weights.file_name] = b"not the real checkpoint"
    assert main(["-q", "weights", "fetch", "fid", "--base-url", server.url]) == 2
    error = capsys.readouterr().err
    assert "does not start with the pinned prefix 6726825d" in error and error.count("\n") == 1
    assert list(hub.iterdir()) == []


def test_cut_off_transfer_is_refused_and_leaves_no_partial_file(server, hub):
    server.files[TEST_WEIGHTS.file_name] = _bytes_with_prefix("ab1")
    server.cut = True
    with pytest.raises(Exception, match="download of .* (broke off|stopped at)"):
        fetch_one(TEST_WEIGHTS, server.url, 5, False)
    assert list(hub.iterdir()) == []


def test_offline_fetch_is_one_sentence_and_exit_2(hub, capsys, monkeypatch):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("SRLOSS_WEIGHTS_URL", f"http://127.0.0.1:{port}/weights")
    assert main(["-q", "weights", "fetch"]) == 2
    error = capsys.readouterr().err
    assert error.startswith("error: could not reach") and "into" in error and error.count("\n") == 1
    assert list(hub.iterdir()) == []


def test_fetched_fid_weights_are_loaded_without_params(hub):
    from pipeline.metrics.fid_metric import FidMetric, fid_inception

    hub.mkdir(parents=True)
    torch.save(fid_inception().state_dict(), hub / WEIGHTS_FILE)
    assert isinstance(FidMetric.load(FidConfig()), FidMetric)
