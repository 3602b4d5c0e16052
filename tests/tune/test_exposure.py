"""What a local Ray cluster started by the project listens on (issue 18, item 6).

Ray 2.60 binds its gRPC servers (GCS, raylet, every core worker and the driver) to the wildcard
address, and ``ray.init`` replaces a loopback ``_node_ip_address`` with the machine's external address
(``services.resolve_ip_for_localhost``): no option makes them listen on 127.0.0.1 only. This test
records that state as a strict expected failure, so it fails (and is to be turned into a plain test)
the day a Ray release lets the project bind them to the loopback."""

from __future__ import annotations

import ipaddress
import os

import psutil
import pytest

from pipeline.config import RayConfig
from pipeline.tune.cluster import ray_cluster


def listening_addresses(pids: set[int]) -> dict[str, set[str]]:
    """``process name -> addresses`` of the TCP sockets the ``pids`` listen on."""
    found: dict[str, set[str]] = {}
    for connection in psutil.net_connections("tcp"):
        if connection.status == psutil.CONN_LISTEN and connection.pid in pids:
            name = psutil.Process(connection.pid).name()
            found.setdefault(name, set()).add(connection.laddr.ip)
    return found


def worker_pid() -> int:
    return os.getpid()


@pytest.mark.slow
@pytest.mark.xfail(strict=True, raises=AssertionError, reason="Ray 2.60's gRPC servers listen on every interface; see the module docstring")
def test_a_local_cluster_listens_on_the_loopback_only():
    with ray_cluster(RayConfig(num_cpus=1)):
        import ray

        ray.get(ray.remote(worker_pid).remote())  # a worker process, with its own gRPC server
        started = {child.pid for child in psutil.Process().children(recursive=True)} | {os.getpid()}
        addresses = listening_addresses(started)
    assert addresses, "no Ray process listened at all"
    exposed = {name: ips for name, ips in addresses.items()
               if not all(ipaddress.ip_address(ip).is_loopback for ip in ips)}
    assert not exposed, exposed
