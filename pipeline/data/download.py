"""Archives from a URL: resumable download, sha256 check and safe extraction into a cache.

Cache layout: ``<cache_dir>/<archive name>-<12 hex of sha256(url)>/`` holds the archive and
``extracted/``, which carries a marker with the archive's sha256 so a second run is a no-op.
A download grows in ``<archive>.part`` (resumed with an HTTP Range request) and is renamed
to the archive only once complete, verified (sha256 when given) and readable to its end as a
zip or tar archive. Extraction refuses absolute member paths,
``..`` components, links that leave the folder or run through another link, and special
files, before anything is written.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import stat
import tarfile
import zipfile
from collections import Counter
from dataclasses import dataclass
from http.client import HTTPException, HTTPResponse
from pathlib import Path
from urllib.error import HTTPError, URLError
from urllib.parse import unquote, urlparse
from urllib.request import Request, urlopen

from tqdm import tqdm

from pipeline.errors import PipelineError

log = logging.getLogger(__name__)

CHUNK_BYTES = 1 << 20
MARKER = ".srloss-extracted"
_DRIVE = re.compile(r"^[A-Za-z]:")


class SourceUnavailable(PipelineError):
    """The server could not be reached, refused the file, or the transfer broke off."""


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file's bytes, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(CHUNK_BYTES), b""):
            digest.update(block)
    return digest.hexdigest()


def archive_name(url: str) -> str:
    """The file name a URL's path ends in (``archive`` when it has none)."""
    name = unquote(urlparse(url).path).rstrip("/").rsplit("/", 1)[-1]
    return name if name not in ("", ".", "..") else "archive"


def cache_folder(url: str, cache_dir: Path) -> Path:
    """``<cache_dir>/<archive name>-<12 hex of sha256(url)>``: one folder per URL."""
    key = hashlib.sha256(url.encode()).hexdigest()[:12]
    return Path(cache_dir).expanduser() / f"{archive_name(url)}-{key}"


def fetch_archive(url: str, cache_dir: Path, sha256: str | None = None, *,
                  timeout: float = 30.0, progress: bool = True) -> Path:
    """Download (or reuse) the archive at ``url``, verify it, extract it; return the extracted folder."""
    folder = cache_folder(url, cache_dir)
    target = folder / "extracted"
    marker = target / MARKER
    expected = sha256.lower() if sha256 else None
    if marker.is_file() and (expected is None or marker.read_text() == expected):
        if expected is None:
            _warn_unpinned(url, marker.read_text())
        return target
    digest = download(url, folder / archive_name(url), expected, timeout=timeout, progress=progress)
    return extract_archive(folder / archive_name(url), target, digest)


def download(url: str, destination: Path, sha256: str | None = None, *,
             timeout: float = 30.0, progress: bool = True) -> str:
    """Download ``url`` to ``destination`` and return its sha256.

    An existing ``destination`` is only verified. Otherwise bytes go to ``<destination>.part``
    (resumed when present) and reach ``destination`` only when complete and, if ``sha256`` is
    given, matching; a mismatching download is deleted.
    """
    destination = Path(destination)
    expected = sha256.lower() if sha256 else None
    if destination.is_file():
        actual = file_sha256(destination)
        if expected and actual != expected:
            raise PipelineError(f"cached archive '{destination}' has sha256 {actual} but {expected} is expected; "
                                "delete the cached file to download it again, or correct sha256 in params.yaml")
        if expected is None:
            _require_archive(destination, f"the cached archive '{destination}'")
    else:
        destination.parent.mkdir(parents=True, exist_ok=True)
        part = destination.with_name(destination.name + ".part")
        transfer(url, part, timeout, progress)
        actual = file_sha256(part)
        if expected and actual != expected:
            part.unlink()
            raise PipelineError(f"'{url}' arrived with sha256 {actual} but {expected} is expected, so it was deleted; "
                                "correct sha256 in params.yaml if the archive changed upstream, or retry")
        _require_archive(part, f"the download of '{url}'")
        os.replace(part, destination)
    if expected is None:
        _warn_unpinned(url, actual)
    return actual


def _require_archive(path: Path, what: str) -> None:
    """Delete ``path`` and raise unless it opens as a zip or tar archive and its member list reads
    to the end: a transfer cut off without a Content-Length is caught before it is cached."""
    with open(path, "rb") as handle:
        is_zip = handle.read(2) == b"PK"
    try:
        if is_zip:
            with zipfile.ZipFile(path) as bundle:
                broken = bundle.testzip()
                if broken is not None:
                    raise zipfile.BadZipFile(f"member '{broken}' fails its CRC check")
            return
        with tarfile.open(path) as bundle:
            bundle.getmembers()
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, OSError) as exc:
        path.unlink(missing_ok=True)
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise SourceUnavailable(f"{what} is not a complete zip or tar archive ({reason}), so it was deleted; run "
                                "again to download it anew, or check that the url points at an archive") from None


def _warn_unpinned(url: str, digest: str) -> None:
    log.warning("no sha256 is configured for '%s'; its sha256 is %s: add it as sha256 in params.yaml "
                "to pin the archive", url, digest)


ARCHIVE_HINT = "or download the archive yourself and use a 'folder' source"


def transfer(url: str, part: Path, timeout: float, progress: bool, hint: str = ARCHIVE_HINT) -> None:
    """Append the missing bytes to ``part``; start over when the server ignores the Range request.
    A broken-off or short transfer (fewer bytes than Content-Length) raises ``SourceUnavailable``
    and leaves ``part`` as it is; ``hint`` ends the sentence for an unreachable server."""
    offset = part.stat().st_size if part.is_file() else 0
    response = _open(url, offset, timeout, hint)
    if offset and (response is None or not _resumes_at(response, offset)):
        if response is not None:
            response.close()
        log.info("'%s' cannot be resumed at byte %d; downloading it from the start", url, offset)
        part.unlink()
        offset = 0
        response = _open(url, 0, timeout, hint)
    assert response is not None, "a request without Range cannot answer 416"
    length = response.headers.get("Content-Length", "")
    total = offset + int(length) if length.isdigit() else None
    with response, open(part, "ab" if offset else "wb") as sink, \
            tqdm(total=total, initial=offset, unit="B", unit_scale=True, unit_divisor=1024,
                 desc=part.name.removesuffix(".part"), disable=not progress) as bar:
        try:
            while chunk := response.read(CHUNK_BYTES):
                sink.write(chunk)
                bar.update(len(chunk))
        except (OSError, HTTPException) as exc:
            raise SourceUnavailable(f"the download of '{url}' broke off ({exc}); run again to resume it") from None
    if total is not None and part.stat().st_size != total:
        raise SourceUnavailable(f"the download of '{url}' stopped at {part.stat().st_size} of {total} bytes; "
                                "run again to resume it")


def _open(url: str, offset: int, timeout: float, hint: str) -> HTTPResponse | None:
    """The response to a GET from byte ``offset``; None when the server answers 416 to a Range."""
    headers = {"Range": f"bytes={offset}-"} if offset else {}
    try:
        return urlopen(Request(url, headers=headers), timeout=timeout)
    except HTTPError as exc:
        exc.close()
        if exc.code == 416 and offset:
            return None
        raise SourceUnavailable(f"'{url}' answered HTTP {exc.code} ({exc.reason}); check the URL, {hint}") from None
    except ValueError as exc:
        raise PipelineError(f"'{url}' is not a valid URL ({exc}); write a full http(s):// address") from None
    except (URLError, OSError, HTTPException) as exc:
        reason = getattr(exc, "reason", exc)
        raise SourceUnavailable(f"could not reach '{url}' ({reason}); check the URL and the network, {hint}") from None


def _resumes_at(response: HTTPResponse, offset: int) -> bool:
    """True when the server sent a 206 whose Content-Range starts at ``offset``."""
    match = re.match(r"bytes (\d+)-", response.headers.get("Content-Range", ""))
    return response.status == 206 and match is not None and int(match.group(1)) == offset


# ---------------------------------------------------------------- extraction
@dataclass(frozen=True)
class _Member:
    """One archive entry: its stored name, its safe relative path, its kind and link target."""

    name: str
    parts: tuple[str, ...]
    kind: str
    link: str
    source: zipfile.ZipInfo | tarfile.TarInfo


def extract_archive(archive: Path, target: Path, tag: str) -> Path:
    """Extract a zip or tar(.gz/.bz2/.xz) ``archive`` into ``target`` after checking every member.

    ``tag`` (the archive's sha256) is written to a marker inside ``target``; when the marker
    already holds it, nothing is done. Extraction goes through ``<target>.partial``.
    """
    archive, target = Path(archive), Path(target)
    marker = target / MARKER
    if marker.is_file() and marker.read_text() == tag:
        return target
    staging = target.with_name(target.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        _extract_checked(archive, staging)
        (staging / MARKER).write_text(tag)
        shutil.rmtree(target, ignore_errors=True)
        os.replace(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _extract_checked(archive: Path, root: Path) -> None:
    broken = f"archive '{archive}' cannot be read"
    fix = "delete it so it is downloaded again, or use a 'folder' source"
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as bundle:
                members = _checked(archive, [_zip_member(archive, bundle, info) for info in bundle.infolist()])
                _extract_zip(bundle, members, root)
        elif tarfile.is_tarfile(archive):
            with tarfile.open(archive) as bundle:
                members = _checked(archive, [_tar_member(archive, info) for info in bundle.getmembers()])
                bundle.extractall(root, members=[m.source for m in members], filter="data")
        else:
            raise PipelineError(f"'{archive}' is neither a zip nor a tar archive; "
                                "point the url at a .zip or .tar(.gz) file")
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, OSError) as exc:
        raise PipelineError(f"{broken} ({exc}); {fix}") from None


def _zip_member(archive: Path, bundle: zipfile.ZipFile, info: zipfile.ZipInfo) -> _Member:
    mode = info.external_attr >> 16
    if info.is_dir() or stat.S_ISDIR(mode):
        kind, link = "dir", ""
    elif stat.S_ISLNK(mode):
        kind, link = "symlink", bundle.read(info).decode("utf-8", "replace")
    elif stat.S_IFMT(mode) in (0, stat.S_IFREG):
        kind, link = "file", ""
    else:
        kind, link = "special", ""
    return _Member(info.filename, _safe_parts(archive, info.filename), kind, link, info)


def _tar_member(archive: Path, info: tarfile.TarInfo) -> _Member:
    if info.isdir():
        kind = "dir"
    elif info.isreg():
        kind = "file"
    elif info.issym():
        kind = "symlink"
    elif info.islnk():
        kind = "hardlink"
    else:
        kind = "special"
    return _Member(info.name, _safe_parts(archive, info.name), kind, info.linkname, info)


def _unsafe(archive: Path, name: str, why: str) -> PipelineError:
    return PipelineError(f"archive '{archive}' member '{name}' {why}, so nothing was extracted; "
                         "delete the archive and use one from a trusted source")


def _safe_parts(archive: Path, name: str) -> tuple[str, ...]:
    """The member path as relative components; absolute paths and ``..`` are refused."""
    posix = name.replace("\\", "/")
    if posix.startswith("/") or _DRIVE.match(posix):
        raise _unsafe(archive, name, "has an absolute path")
    parts = tuple(p for p in posix.split("/") if p not in ("", "."))
    if ".." in parts:
        raise _unsafe(archive, name, "climbs out with '..'")
    return parts


def _checked(archive: Path, members: list[_Member]) -> list[_Member]:
    """The members worth extracting, after refusing any that could write outside the folder."""
    members = [m for m in members if m.parts or m.kind != "dir"]
    links = {m.parts for m in members if m.kind in ("symlink", "hardlink")}
    uses = Counter(m.parts for m in members)
    for member in members:
        if member.kind == "special":
            raise _unsafe(archive, member.name, "is a device, fifo or other special file")
        if not member.parts:
            raise _unsafe(archive, member.name, "has an empty path")
        if any(member.parts[:i] in links for i in range(1, len(member.parts))):
            raise _unsafe(archive, member.name, "lies behind a link")
        if member.parts in links and uses[member.parts] > 1:
            raise _unsafe(archive, member.name, "is a link and also another member")
        start = member.parts[:-1] if member.kind == "symlink" else ()
        if member.kind in ("symlink", "hardlink") and not _stays_inside(start, member.link, links):
            raise _unsafe(archive, member.name, f"links to '{member.link}', outside the archive folder")
    return members


def _stays_inside(start: tuple[str, ...], link: str, links: set[tuple[str, ...]]) -> bool:
    """Whether ``link``, followed from folder ``start``, ends inside the root without crossing a link."""
    posix = link.replace("\\", "/")
    if not posix or posix.startswith("/") or _DRIVE.match(posix):
        return False
    here = list(start)
    steps = [p for p in posix.split("/") if p not in ("", ".")]
    for index, step in enumerate(steps):
        if step == "..":
            if not here:
                return False
            here.pop()
            continue
        here.append(step)
        if tuple(here) in links and index < len(steps) - 1:
            return False
    return True


def _extract_zip(bundle: zipfile.ZipFile, members: list[_Member], root: Path) -> None:
    for member in members:
        path = root.joinpath(*member.parts)
        if member.kind == "dir":
            path.mkdir(parents=True, exist_ok=True)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        if member.kind == "symlink":
            os.symlink(member.link, path)
            continue
        with bundle.open(member.source) as source, open(path, "wb") as sink:
            shutil.copyfileobj(source, sink, CHUNK_BYTES)
