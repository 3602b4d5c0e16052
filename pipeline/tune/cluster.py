"""Where a sweep runs: a Ray cluster to join or a local one to start, and where its results go.

The address is ``sweep.ray.address``, else ``$RAY_ADDRESS``: ``auto`` joins the cluster already
running on this machine, ``host:6379`` a head node's GCS port, ``ray://host:10001`` goes through
Ray Client. Without one a new local cluster is started (even when ``ray start`` runs on this
machine), sized by ``sweep.ray.num_cpus``/``num_gpus`` (default: this machine), and shut down
when the sweep ends; should the driver be killed, ``pipeline.tune.reaper`` ends the agents Ray
itself leaves running. The trials' output stays out of the driver's console (``log_to_driver=False``):
each trial logs to its own file (``pipeline.tune.trial``), and their raw output is in Ray's session
logs (``/tmp/ray/session_latest/logs`` on each node).

Token authentication (Ray 2.60): ``ray.init()`` without an address sets ``RAY_AUTH_MODE=token`` in
this process unless that variable is set, and creates ``~/.ray/auth_token`` when no token exists
(``$RAY_AUTH_TOKEN``, ``$RAY_AUTH_TOKEN_PATH``, ``~/.ray/auth_token``, in that order); ``ray start
--head`` turns token mode on when it finds a token. Joining with ``auto`` picks up a token found on
this machine, but an explicit address does not: export ``RAY_AUTH_MODE=token`` and the head's token
first (without them the driver retries for about 30 s, then fails). Every worker node needs the
same ``RAY_AUTH_MODE=token`` and token before ``ray start --address``, or it is refused.
"""

from __future__ import annotations

import logging
import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pyarrow.fs

from pipeline.config import RayConfig
from pipeline.errors import ConfigError, PipelineError, exception_summary
from pipeline.tune.reaper import DONE, start_reaper

log = logging.getLogger(__name__)


def cluster_address(config: RayConfig) -> str | None:
    """``sweep.ray.address``, else ``$RAY_ADDRESS``, else None (start a local cluster)."""
    return config.address or os.environ.get("RAY_ADDRESS") or None


def is_uri(location: str) -> bool:
    return "://" in location


def storage_location(storage_path: str, address: str | None) -> str:
    """``sweep.storage_path`` as an absolute path or a URI (s3://, gs://, ...).

    Params from ``load_params`` hold it absolute (resolved against the project folder) unless the
    sweep joins a cluster; a relative one is then refused, since trials on other nodes could not
    write there (without a cluster to join it is taken relative to the working directory).
    """
    if is_uri(storage_path):
        return storage_path
    path = Path(storage_path).expanduser()
    if path.is_absolute():
        return str(path)
    if address is not None:
        raise ConfigError(f"sweep.storage_path '{storage_path}' is relative but the sweep joins the Ray cluster at "
                          f"'{address}'; use an absolute path on storage every node mounts (e.g. /mnt/shared/"
                          "ray_results) or a bucket URI (s3://bucket/ray_results)")
    return str(path.resolve())


def storage_filesystem(location: str) -> tuple[pyarrow.fs.FileSystem, str]:
    """The filesystem and path of a location from ``storage_location``."""
    if is_uri(location):
        return pyarrow.fs.FileSystem.from_uri(location)
    return pyarrow.fs.LocalFileSystem(), location


@contextmanager
def ray_cluster(config: RayConfig) -> Iterator[str]:
    """Be connected to Ray inside; yields the address joined (``local`` for a started cluster).

    A connection that already exists is used as it is and left open.
    """
    import ray

    if ray.is_initialized():
        yield "existing connection"
        return
    address = cluster_address(config)
    reaper = None
    if address is None:
        # "local": never attach to a cluster `ray start` left on this machine
        ray.init(address="local", num_cpus=config.num_cpus, num_gpus=config.num_gpus, include_dashboard=False,
                 logging_level=logging.WARNING, log_to_driver=False)
        log.info("started a local Ray cluster with %s", ray.cluster_resources())
        reaper = _start_reaper()
    else:
        if config.num_cpus is not None or config.num_gpus is not None:
            raise ConfigError(f"sweep.ray.num_cpus/num_gpus size a local cluster only; remove them to join '{address}' "
                              "(its nodes declare their resources with `ray start --num-cpus/--num-gpus`)")
        try:
            ray.init(address=address, logging_level=logging.WARNING, log_to_driver=False)
        except Exception as exc:  # noqa: BLE001 - any connection failure becomes one sentence
            raise PipelineError(_join_failure(address, exc)) from None
        log.info("joined the Ray cluster at %s: %s", address, ray.cluster_resources())
    try:
        yield address or "local"
    finally:
        ray.shutdown()
        if reaper is not None:  # a clean end: the reaper leaves everything alone
            reaper.stdin.write(DONE)
            reaper.stdin.close()
            reaper.wait(timeout=30)


def _start_reaper() -> subprocess.Popen | None:
    """The reaper (``pipeline.tune.reaper``) of the local cluster's raylet, or None with a warning."""
    from ray._private import worker

    try:
        raylet = worker._global_node.all_processes["raylet"][0].process.pid
    except (AttributeError, KeyError, IndexError):
        log.warning("could not find the local Ray cluster's raylet; if this sweep is killed, end Ray's leftover "
                    "agents with `ray stop`")
        return None
    return start_reaper(raylet)


def _join_failure(address: str, exc: Exception) -> str:
    """One sentence for a failed ``ray.init(address=...)``: a refused token looks like no cluster at all."""
    hint = ""
    if os.environ.get("RAY_AUTH_MODE", "").lower() != "token":
        hint = ("; a cluster with token authentication also needs RAY_AUTH_MODE=token and its token here "
                "(RAY_AUTH_TOKEN_PATH=<file> or ~/.ray/auth_token; `ray get-auth-token` prints it on the head)")
    return (f"could not join the Ray cluster at '{address}' ({exception_summary(exc)}); check that it runs "
            f"(`ray status` on the head) and the address (sweep.ray.address or RAY_ADDRESS){hint}")
