"""Where a sweep keeps what every node must reach: ``sweep.storage_path`` as a folder or an object store.

A location is an absolute folder (a local cluster, or a disk every node mounts at the same path) or
a URI: ``s3://bucket/prefix`` (or ``gs://``, anything ``pyarrow.fs`` reads). An S3-compatible server
(MinIO, Ceph) is named by ``sweep.storage_endpoint``, else ``$AWS_ENDPOINT_URL_S3``, else
``$AWS_ENDPOINT_URL`` (``http://host:9000``). Credentials come from AWS's own chain on each node
(``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``, ``AWS_PROFILE`` and ``~/.aws``, an instance role) and
never from params: the filesystem Ray pickles into its run state and ships to the trials holds the
endpoint and region only. Every read and write of the sweep's storage goes through ``Storage``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlparse

import pyarrow.fs

from pipeline.errors import ConfigError, PipelineError

ENDPOINT_VARIABLES = ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL")
T = TypeVar("T")


def is_uri(location: str) -> bool:
    return "://" in location


def storage_endpoint(configured: str | None) -> str | None:
    """The S3 endpoint: ``sweep.storage_endpoint``, else the first AWS endpoint variable set, else None (AWS)."""
    return configured or next((os.environ[name] for name in ENDPOINT_VARIABLES if os.environ.get(name)), None)


def open_storage(storage_path: str, endpoint: str | None, address: str | None) -> "Storage":
    """``sweep.storage_path`` as a ``Storage``.

    A relative path is resolved against the project folder for a local cluster; with a cluster
    to join it is refused, since trials on other nodes could not write there.
    """
    if is_uri(storage_path):
        return Storage(storage_path.rstrip("/"), storage_endpoint(endpoint))
    path = Path(storage_path).expanduser()
    if path.is_absolute():
        return Storage(str(path))
    if address is not None:
        raise ConfigError(f"sweep.storage_path '{storage_path}' is relative but the sweep joins the Ray cluster at "
                          f"'{address}'; use an absolute path on storage every node mounts (e.g. /mnt/shared/"
                          "ray_results) or a bucket URI (s3://bucket/ray_results)")
    return Storage(str(path.resolve()))  # load_params made it absolute against the project already


@dataclass(frozen=True)
class Storage:
    """A folder of the sweep's storage: ``location`` is an absolute path or a URI without a trailing
    slash; ``endpoint`` an S3-compatible server's URL (None: AWS, or not S3)."""

    location: str
    endpoint: str | None = None

    @property
    def remote(self) -> bool:
        return is_uri(self.location)

    @cached_property
    def _resolved(self) -> tuple[pyarrow.fs.FileSystem, str]:
        if not self.remote:
            return pyarrow.fs.LocalFileSystem(), self.location
        parsed = urlparse(self.location)
        if parsed.scheme == "s3" and self.endpoint:
            endpoint = urlparse(self.endpoint if "://" in self.endpoint else f"https://{self.endpoint}")
            filesystem = pyarrow.fs.S3FileSystem(endpoint_override=endpoint.netloc, scheme=endpoint.scheme,
                                                 region=os.environ.get("AWS_REGION") or
                                                 os.environ.get("AWS_DEFAULT_REGION") or "us-east-1")
            return filesystem, f"{parsed.netloc}{parsed.path}".rstrip("/")
        try:
            return pyarrow.fs.FileSystem.from_uri(self.location)
        except (OSError, ValueError) as exc:
            raise ConfigError(f"sweep.storage_path '{self.location}' cannot be opened ({exc}); use a folder or "
                              "a URI such as s3://bucket/prefix") from None

    @property
    def filesystem(self) -> pyarrow.fs.FileSystem:
        """The ``pyarrow`` filesystem (what ``RunConfig(storage_filesystem=...)`` takes)."""
        return self._resolved[0]

    @property
    def path(self) -> str:
        """The location inside ``filesystem`` (``bucket/prefix`` for S3; what ``RunConfig(storage_path=...)`` takes)."""
        return self._resolved[1]

    def child(self, *names: str) -> "Storage":
        return Storage("/".join([self.location, *names]), self.endpoint)

    def _full(self, name: str) -> str:
        return f"{self.path}/{name}" if name else self.path

    def exists(self, name: str = "") -> bool:
        return self._checked(name, lambda: self.filesystem.get_file_info(self._full(name)).type
                             != pyarrow.fs.FileType.NotFound)

    def read_bytes(self, name: str) -> bytes:
        def read() -> bytes:
            with self.filesystem.open_input_stream(self._full(name)) as handle:
                return handle.read()
        return self._checked(name, read)

    def write_bytes(self, name: str, data: bytes) -> None:
        """Write ``name`` whole (an object store shows it only once it is complete)."""
        def write() -> None:
            parent = self._full(name).rsplit("/", 1)[0]
            self.filesystem.create_dir(parent)
            with self.filesystem.open_output_stream(self._full(name)) as handle:
                handle.write(data)
        self._checked(name, write)

    def files(self, name: str = "") -> list[str]:
        """Every file under ``name`` (recursive), relative to it; empty when it does not exist."""
        def listing() -> list[str]:
            base = self._full(name)
            selector = pyarrow.fs.FileSelector(base, recursive=True, allow_not_found=True)
            return sorted(info.path[len(base) + 1:] for info in self.filesystem.get_file_info(selector)
                          if info.type == pyarrow.fs.FileType.File)
        return self._checked(name, listing)

    def delete(self, name: str = "") -> None:
        """Delete the folder ``name`` and everything in it."""
        self._checked(name, lambda: self.filesystem.delete_dir(self._full(name)))

    def upload(self, local: Path, name: str) -> None:
        """Copy the local folder ``local`` to ``name`` (on several threads)."""
        self._checked(name, lambda: pyarrow.fs.copy_files(str(local), self._full(name),
                                                          source_filesystem=pyarrow.fs.LocalFileSystem(),
                                                          destination_filesystem=self.filesystem))

    def download(self, name: str, local: Path) -> None:
        """Copy the folder ``name`` to the local folder ``local`` (on several threads)."""
        Path(local).mkdir(parents=True, exist_ok=True)
        self._checked(name, lambda: pyarrow.fs.copy_files(self._full(name), str(local),
                                                          source_filesystem=self.filesystem,
                                                          destination_filesystem=pyarrow.fs.LocalFileSystem()))

    def _checked(self, name: str, action: Callable[[], T]) -> T:
        """``action()``, with a refused or unreachable store as one sentence naming the location."""
        try:
            return action()
        except OSError as exc:
            if not self.remote:
                raise
            where = self._full(name) if name else self.location
            raise PipelineError(f"the sweep storage could not be reached at '{where}' ({_first_line(exc)}); check "
                                "sweep.storage_path, the endpoint (sweep.storage_endpoint or AWS_ENDPOINT_URL) "
                                "and the credentials (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_PROFILE) "
                                "on this node") from None


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
