"""Where a sweep runs: storage paths checked against the cluster before Ray starts, and a sweep
joining a head node started with ``ray start --head`` on 127.0.0.1."""

from __future__ import annotations

import csv
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from pipeline.config import RayConfig
from pipeline.errors import ConfigError
from pipeline.tune.cluster import cluster_address
from pipeline.tune.storage import Storage, open_storage
from pipeline.tune.sweep import run_sweep
from tests.tune.sweep_params import sweep_params
from tests.tune.processes import end_session


def test_storage_must_be_shared_when_joining_a_cluster(monkeypatch):
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3", raising=False)
    assert open_storage("s3://bucket/sweeps/", None, "10.0.0.1:6379") == Storage("s3://bucket/sweeps")
    assert open_storage("/mnt/shared/sweeps", None, "10.0.0.1:6379") == Storage("/mnt/shared/sweeps")
    assert open_storage("ray_results", None, None) == Storage(str(Path.cwd() / "ray_results"))
    with pytest.raises(ConfigError, match="sweep.storage_path 'ray_results' is relative but the sweep joins the Ray "
                                          "cluster at '10.0.0.1:6379'; use an absolute path .* or a bucket URI"):
        open_storage("ray_results", None, "10.0.0.1:6379")
    monkeypatch.setenv("RAY_ADDRESS", "auto")
    assert cluster_address(RayConfig()) == "auto"
    assert cluster_address(RayConfig(address="ray://head:10001")) == "ray://head:10001"
    monkeypatch.delenv("RAY_ADDRESS")
    assert cluster_address(RayConfig()) is None


def test_a_relative_storage_path_with_a_cluster_fails_before_ray_starts(tiny_data, tmp_path):
    params = sweep_params(tiny_data, tmp_path, {"ray": {"address": "10.0.0.1:6379"}, "storage_path": "ray_results"})
    started = time.monotonic()
    with pytest.raises(ConfigError, match="is relative but the sweep joins the Ray cluster at '10.0.0.1:6379'"):
        run_sweep(params)
    assert time.monotonic() - started < 5


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def head_node():
    """``(address, temp folder)`` of a Ray head on 127.0.0.1 (``ray start --head --block`` in its own
    session, with its own temp folder so it leaves no address behind for other ``ray.init()``
    calls); its processes are killed at teardown (``ray stop`` would stop every Ray cluster on the
    machine)."""
    port = free_port()
    temp = tempfile.mkdtemp(prefix="rayhead", dir="/tmp")  # short: Ray's socket paths must stay < 108 bytes
    command = [str(Path(sys.executable).parent / "ray"), "start", "--head", "--port", str(port),
               "--node-ip-address", "127.0.0.1", "--num-cpus", "2", "--include-dashboard", "false", "--temp-dir", temp,
               "--block"]
    head = subprocess.Popen(command, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if head.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"`ray start --head` did not listen on port {port} within 60 s (exit {head.poll()})")
                time.sleep(0.5)
        yield f"127.0.0.1:{port}", Path(temp)
    finally:
        if head.poll() is None:
            os.killpg(head.pid, signal.SIGKILL)
        end_session(head.pid, grace=0)
        head.wait(timeout=30)
        shutil.rmtree(temp, ignore_errors=True)


@pytest.mark.slow
def test_a_sweep_joins_a_running_cluster(tiny_data, tmp_path, head_node):
    address, head_temp = head_node
    params = sweep_params(tiny_data, tmp_path, {"objectives": {"l1": {}, "l2": {"loss": {"terms": {"l2": 1.0}}}},
                                                "ray": {"address": address}, "reports": 2})
    summary = run_sweep(params)
    assert summary["trials"] == 2 and summary["failed"] == 0 and set(summary["best"]) == {"l1", "l2"}
    rows = list(csv.DictReader((Path(params.results_dir) / "sweep" / "trials.csv").open()))
    assert {row["status"] for row in rows} == {"COMPLETED"}
    # Tune staged its driver files in the head's session: the sweep ran on that cluster, not a new local one
    assert list(head_temp.glob(f"session_*/artifacts/*/{params.sweep.name}/driver_artifacts"))
