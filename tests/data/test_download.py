"""Download (resume, sha256), safe extraction and the archive cache, against a real local HTTP server."""

from __future__ import annotations

import hashlib
import io
import re
import socket
import tarfile
import time
import zipfile
from pathlib import Path

import pytest

from pipeline.data.download import (
    MARKER,
    SourceUnavailable,
    archive_name,
    cache_folder,
    download,
    extract_archive,
    fetch_archive,
    file_sha256,
)
from pipeline.errors import PipelineError

from .conftest import closed_port, make_archive, png_bytes

FILES = {"pack/HR/a.png": png_bytes(seed=1), "pack/HR/sub/b.png": png_bytes(seed=2), "pack/README.txt": b"hello"}


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize("name", ["pack.zip", "pack.tar.gz", "pack.tar.bz2", "pack.tar"])
def test_fetch_downloads_verifies_and_extracts(server, tmp_path, name):
    data = make_archive(server.root / name, FILES).read_bytes()
    folder = fetch_archive(server.url(name), tmp_path / "cache", sha(data), progress=False)
    assert folder == cache_folder(server.url(name), tmp_path / "cache") / "extracted"
    for member, content in FILES.items():
        assert (folder / member).read_bytes() == content
    assert (folder / MARKER).read_text() == sha(data)
    assert (folder.parent / name).read_bytes() == data
    assert not (folder.parent / (name + ".part")).exists()


def test_second_fetch_makes_no_request(server, tmp_path):
    data = make_archive(server.root / "pack.zip", FILES).read_bytes()
    first = fetch_archive(server.url("pack.zip"), tmp_path, sha(data), progress=False)
    stamp = (first / "pack/HR/a.png").stat().st_mtime_ns
    assert fetch_archive(server.url("pack.zip"), tmp_path, sha(data), progress=False) == first
    assert fetch_archive(server.url("pack.zip"), tmp_path, None, progress=False) == first
    assert len(server.requests) == 1
    assert (first / "pack/HR/a.png").stat().st_mtime_ns == stamp


def test_unpinned_download_logs_its_sha256(server, tmp_path, caplog):
    data = make_archive(server.root / "pack.zip", FILES).read_bytes()
    assert download(server.url("pack.zip"), tmp_path / "pack.zip", progress=False) == sha(data)
    assert sha(data) in caplog.text


def test_sha256_mismatch_keeps_no_file(server, tmp_path):
    data = make_archive(server.root / "pack.zip", FILES).read_bytes()
    wrong = "0" * 64
    destination = tmp_path / "cache" / "pack.zip"
    with pytest.raises(PipelineError, match=f"sha256 {sha(data)} but {wrong} is expected"):
        download(server.url("pack.zip"), destination, wrong, progress=False)
    assert list(destination.parent.iterdir()) == []
    with pytest.raises(PipelineError, match="correct sha256"):
        fetch_archive(server.url("pack.zip"), tmp_path / "cache", wrong, progress=False)
    assert not (cache_folder(server.url("pack.zip"), tmp_path / "cache") / "extracted").exists()


def test_cached_archive_with_other_sha256_names_the_fix(server, tmp_path):
    destination = tmp_path / "pack.zip"
    destination.write_bytes(b"not the archive")
    with pytest.raises(PipelineError, match=f"has sha256 {sha(b'not the archive')} .*delete the cached file"):
        download(server.url("pack.zip"), destination, "1" * 64, progress=False)
    assert server.requests == []


def test_partial_download_resumes_with_range(server, tmp_path):
    data = make_archive(server.root / "pack.tar.gz", FILES).read_bytes()
    destination = tmp_path / "pack.tar.gz"
    destination.with_name("pack.tar.gz.part").write_bytes(data[:100])
    assert download(server.url("pack.tar.gz"), destination, sha(data), progress=False) == sha(data)
    assert server.requests == [("/pack.tar.gz", "bytes=100-")]
    assert destination.read_bytes() == data


@pytest.mark.parametrize("honour_range, prefix", [(False, b"x" * 100), (True, b"y" * 10**6)],
                         ids=["server-ignores-range", "part-longer-than-file"])
def test_unresumable_partial_restarts_cleanly(server, tmp_path, honour_range, prefix):
    data = make_archive(server.root / "pack.zip", FILES).read_bytes()
    server.honour_range = honour_range
    destination = tmp_path / "pack.zip"
    destination.with_name("pack.zip.part").write_bytes(prefix)
    assert download(server.url("pack.zip"), destination, sha(data), progress=False) == sha(data)
    assert destination.read_bytes() == data
    assert server.requests[0][1] == f"bytes={len(prefix)}-"


def test_unreachable_server_fails_fast_with_a_hint(tmp_path):
    url = f"http://127.0.0.1:{closed_port()}/pack.zip"
    started = time.monotonic()
    with pytest.raises(SourceUnavailable, match=f"could not reach '{url}'.*'folder' source"):
        fetch_archive(url, tmp_path, timeout=2, progress=False)
    assert time.monotonic() - started < 5


def test_silent_server_times_out(tmp_path):
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        url = f"http://127.0.0.1:{listener.getsockname()[1]}/pack.zip"
        started = time.monotonic()
        with pytest.raises(SourceUnavailable, match="could not reach"):
            download(url, tmp_path / "pack.zip", timeout=0.5, progress=False)
        assert time.monotonic() - started < 5


def test_missing_file_is_reported_with_its_status(server, tmp_path):
    with pytest.raises(SourceUnavailable, match="HTTP 404"):
        download(server.url("nope.zip"), tmp_path / "nope.zip", progress=False)


def test_archive_name_comes_from_the_url_path():
    assert archive_name("https://host/a/DIV2K_train_HR.zip?x=1") == "DIV2K_train_HR.zip"
    assert archive_name("https://host/") == "archive"
    assert cache_folder("https://a/x.zip", Path("/c")) != cache_folder("https://b/x.zip", Path("/c"))


# ------------------------------------------------------------------ unsafe archives
def _tar_with(path: Path, *members: tarfile.TarInfo) -> Path:
    with tarfile.open(path, "w:gz") as bundle:
        for info in members:
            payload = b"evil" if info.isreg() else b""
            info.size = len(payload)
            bundle.addfile(info, io.BytesIO(payload) if payload else None)
    return path


def _entry(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, link
    return info


def _zip_symlink(path: Path, name: str, target: str) -> Path:
    with zipfile.ZipFile(path, "w") as bundle:
        info = zipfile.ZipInfo(name)
        info.external_attr = (0o120777 << 16)
        bundle.writestr(info, target)
    return path


UNSAFE = {
    "zip-dotdot": lambda p: make_archive(p / "a.zip", {"ok.png": b"1", "../evil.png": b"evil"}),
    "zip-absolute": lambda p: make_archive(p / "a.zip", {"/abs_srloss_test.png": b"evil"}),
    "zip-symlink-out": lambda p: _zip_symlink(p / "a.zip", "etc", "/etc"),
    "tar-dotdot": lambda p: _tar_with(p / "a.tgz", _entry("HR/../../evil.png")),
    "tar-absolute": lambda p: _tar_with(p / "a.tgz", _entry("/abs_srloss_test.png")),
    "tar-symlink-abs": lambda p: _tar_with(p / "a.tgz", _entry("HR/etc", tarfile.SYMTYPE, "/etc")),
    "tar-symlink-up": lambda p: _tar_with(p / "a.tgz", _entry("HR/up", tarfile.SYMTYPE, "../../..")),
    "tar-hardlink-out": lambda p: _tar_with(p / "a.tgz", _entry("HR/x", tarfile.LNKTYPE, "../evil.png")),
    "tar-link-chain": lambda p: _tar_with(p / "a.tgz", _entry("l1", tarfile.SYMTYPE, "."),
                                          _entry("l2", tarfile.SYMTYPE, "l1/..")),
    "tar-write-through-link": lambda p: _tar_with(p / "a.tgz", _entry("d", tarfile.SYMTYPE, "sub"),
                                                  _entry("d/evil.png")),
    "tar-link-then-file": lambda p: _tar_with(p / "a.tgz", _entry("x.png", tarfile.SYMTYPE, "y.png"),
                                              _entry("x.png")),
    "tar-device": lambda p: _tar_with(p / "a.tgz", _entry("HR/null", tarfile.CHRTYPE)),
}


@pytest.mark.parametrize("case", sorted(UNSAFE))
def test_unsafe_members_are_refused_before_anything_is_written(tmp_path, case):
    archive = UNSAFE[case](tmp_path)
    box = tmp_path / "box"
    target = box / "cache" / "extracted"
    with pytest.raises(PipelineError, match="nothing was extracted"):
        extract_archive(archive, target, "tag")
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == [Path(archive.name), Path("box"),
                                                                               Path("box/cache")]
    assert not Path("/abs_srloss_test.png").exists()


def test_unsafe_archive_from_a_url_is_refused(server, tmp_path):
    make_archive(server.root / "evil.zip", {"../evil.png": b"evil"})
    with pytest.raises(PipelineError, match="'../evil.png' climbs out"):
        fetch_archive(server.url("evil.zip"), tmp_path / "cache", progress=False)
    assert not list(tmp_path.rglob("evil.png"))


def test_links_inside_the_archive_are_kept(tmp_path):
    archive = _tar_with(tmp_path / "a.tgz", _entry("HR/a.png"), _entry("HR/alias.png", tarfile.SYMTYPE, "a.png"),
                        _entry("HR/copy.png", tarfile.LNKTYPE, "HR/a.png"))
    target = extract_archive(archive, tmp_path / "out", "tag")
    assert (target / "HR/alias.png").is_symlink()
    assert (target / "HR/alias.png").read_bytes() == (target / "HR/copy.png").read_bytes() == b"evil"


def test_extraction_is_idempotent_per_tag(tmp_path):
    archive = make_archive(tmp_path / "a.zip", {"HR/a.png": b"one"})
    target = extract_archive(archive, tmp_path / "out", "tag-1")
    (target / "HR/extra.png").write_bytes(b"left alone")
    extract_archive(archive, target, "tag-1")
    assert (target / "HR/extra.png").exists()
    extract_archive(archive, target, "tag-2")
    assert not (target / "HR/extra.png").exists()
    assert (target / MARKER).read_text() == "tag-2"


def test_not_an_archive_is_reported(tmp_path):
    bogus = tmp_path / "a.zip"
    bogus.write_bytes(b"<html>login page</html>")
    with pytest.raises(PipelineError, match="neither a zip nor a tar"):
        extract_archive(bogus, tmp_path / "out", "tag")
    assert file_sha256(bogus) == sha(b"<html>login page</html>")


@pytest.mark.parametrize("name", ["pack.zip", "pack.tar.gz"])
def test_a_cut_off_archive_is_deleted_not_cached(server, tmp_path, name):
    """Served whole but cut off at the source (no Content-Length or sha256 can tell): it must open to its end."""
    data = make_archive(tmp_path / name, FILES).read_bytes()
    (server.root / name).write_bytes(data[: len(data) // 2])
    cache = tmp_path / "cache"
    with pytest.raises(SourceUnavailable, match=rf"the download of '{re.escape(server.url(name))}' is not a complete "
                                                r"zip or tar archive \(.*\), so it was deleted; run again to download "
                                                r"it anew, or check that the url points at an archive"):
        fetch_archive(server.url(name), cache, progress=False)
    assert [p for p in cache.rglob("*") if p.is_file()] == []
    (server.root / name).write_bytes(data)  # the server is fixed: the next run downloads and extracts it
    extracted = fetch_archive(server.url(name), cache, progress=False)
    assert (extracted / "pack" / "HR" / "a.png").read_bytes() == FILES["pack/HR/a.png"]


def test_a_broken_archive_cached_earlier_is_deleted(tmp_path):
    cached = tmp_path / "pack.zip"
    cached.write_bytes(b"PK\x03\x04 cut off")
    with pytest.raises(SourceUnavailable, match=r"the cached archive '.*pack.zip' is not a complete zip or tar"):
        download("http://127.0.0.1:9/pack.zip", cached, progress=False)
    assert not cached.exists()
