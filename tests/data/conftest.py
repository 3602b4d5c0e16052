"""Shared helpers for the data tests: small PNGs and a local HTTP server that honours Range."""

from __future__ import annotations

import io
import re
import socket
import tarfile
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Iterator
from urllib.parse import urlsplit

import numpy as np
import pytest
from PIL import Image


def write_image(path: Path, height: int = 24, width: int = 32, seed: int = 0) -> np.ndarray:
    """Write a random RGB image (PNG, or by suffix) and return its pixels."""
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)
    return pixels


class _RangeHandler(BaseHTTPRequestHandler):
    """Serves files from ``server.root``; answers ``Range: bytes=N-`` with 206 when ``server.honour_range``."""

    server: "ArchiveServer"

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        self.server.requests.append((self.path, self.headers.get("Range")))
        path = self.server.root / urlsplit(self.path).path.lstrip("/")  # a query (?token=...) names no file
        if not path.is_file():
            self.send_error(404)
            return
        data = path.read_bytes()
        match = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
        start = int(match.group(1)) if match and self.server.honour_range else 0
        if start >= len(data) and start:
            self.send_response(416)
            self.send_header("Content-Range", f"bytes */{len(data)}")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if start:
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(data) - start))
        self.end_headers()
        self.wfile.write(data[start:])

    def log_message(self, *args: object) -> None:
        pass


class ArchiveServer(ThreadingHTTPServer):
    """A 127.0.0.1 server on a free port, serving ``root``; ``requests`` records (path, Range)."""

    def __init__(self, root: Path) -> None:
        super().__init__(("127.0.0.1", 0), _RangeHandler)
        self.root = root
        self.honour_range = True
        self.requests: list[tuple[str, str | None]] = []

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/{name}"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ArchiveServer]:
    root = tmp_path / "served"
    root.mkdir()
    httpd = ArchiveServer(root)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()
    thread.join()


def png_bytes(height: int = 24, width: int = 32, seed: int = 0) -> bytes:
    """A random RGB PNG as bytes."""
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)).save(
        buffer, format="PNG")
    return buffer.getvalue()


def make_archive(path: Path, files: dict[str, bytes]) -> Path:
    """A zip (``.zip``) or tar (``.tar``, ``.tar.gz``, ...) holding ``files`` (name -> bytes)."""
    if path.suffix == ".zip":
        with zipfile.ZipFile(path, "w") as bundle:
            for name, data in files.items():
                bundle.writestr(name, data)
        return path
    with tarfile.open(path, "w:" + {".tar": "", ".gz": "gz", ".bz2": "bz2", ".xz": "xz"}[path.suffix]) as bundle:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            bundle.addfile(info, io.BytesIO(data))
    return path


def closed_port() -> int:
    """A 127.0.0.1 port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
