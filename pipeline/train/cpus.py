"""How many CPU threads torch may use: the CPUs this process really has, decided in one place.

``torch`` starts one thread per core of the machine, which on a shared node (a container with a
CPU quota, a Ray trial given one CPU, a process pinned with ``taskset``) means more threads than
CPUs: every parallel region then waits on threads that are not running, and small regions become
many times slower (measured: the CS decode 5-20x slower at 2 threads than at 1 on a loaded 2-core
machine).
"""

from __future__ import annotations

import logging
import math
import os
import sys
import time
from pathlib import Path

import torch

log = logging.getLogger(__name__)

CGROUP_ROOT = Path("/sys/fs/cgroup")
PROC_STAT = Path("/proc/stat")


def cgroup_cpu_quota(root: Path = CGROUP_ROOT) -> float | None:
    """CPUs allowed by the cgroup's CFS quota (``quota / period``), or None when unlimited.

    cgroup v2: ``cpu.max`` holds ``"<quota> <period>"`` or ``"max <period>"``; cgroup v1:
    ``cpu/cpu.cfs_quota_us`` (-1 = unlimited) and ``cpu/cpu.cfs_period_us``.
    """
    v2 = root / "cpu.max"
    if v2.is_file():
        quota, period = v2.read_text().split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    v1_quota, v1_period = root / "cpu" / "cpu.cfs_quota_us", root / "cpu" / "cpu.cfs_period_us"
    if v1_quota.is_file() and v1_period.is_file():
        quota = int(v1_quota.read_text())
        return None if quota <= 0 else quota / int(v1_period.read_text())
    return None


def ray_assigned_cpus() -> float | None:
    """The CPUs Ray reserved for this task or actor, or None outside a Ray worker (Ray is not imported)."""
    ray = sys.modules.get("ray")
    if ray is None or not ray.is_initialized():
        return None
    context = ray.get_runtime_context()
    if context.worker.mode != ray._private.worker.WORKER_MODE:
        return None
    return context.get_assigned_resources().get("CPU")


def available_cpus(cgroup_root: Path = CGROUP_ROOT) -> int:
    """``min(affinity mask, floor(cgroup quota), floor(Ray's CPUs))``, at least 1.

    Fractions round down: two threads on 1.5 CPUs of quota are throttled mid-region.
    """
    counts = [len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1]
    for limit in (cgroup_cpu_quota(cgroup_root), ray_assigned_cpus()):
        if limit is not None:
            counts.append(math.floor(limit))
    return max(1, min(counts))


def idle_cpus(window: float = 0.1, stat: Path = PROC_STAT) -> float | None:
    """How many of this process's CPUs (its affinity mask) other processes left idle over the next
    ``window`` seconds: the sum over those CPUs of idle ticks / all ticks in ``/proc/stat``; None
    where it cannot be read. The caller sleeps meanwhile, so its own threads do not count as busy."""
    allowed = {f"cpu{index}" for index in os.sched_getaffinity(0)} if hasattr(os, "sched_getaffinity") else None
    try:
        first = _cpu_ticks(stat, allowed)
        time.sleep(window)
        second = _cpu_ticks(stat, allowed)
    except (OSError, ValueError):
        return None
    idle = 0.0
    for name, (idle_after, total_after) in second.items():
        idle_before, total_before = first.get(name, (idle_after, total_after))
        if total_after > total_before:
            idle += (idle_after - idle_before) / (total_after - total_before)
    return idle if second else None


def _cpu_ticks(stat: Path, allowed: set[str] | None) -> dict[str, tuple[int, int]]:
    """``cpuN -> (idle + iowait ticks, all ticks)`` from ``/proc/stat``, for the CPUs in ``allowed``."""
    ticks = {}
    for line in stat.read_text().splitlines():
        name, *fields = line.split()
        if name.startswith("cpu") and name != "cpu" and (allowed is None or name in allowed):
            values = [int(field) for field in fields[:8]]  # user nice system idle iowait irq softirq steal
            ticks[name] = (values[3] + values[4], sum(values))
    return ticks


def use_available_cpus() -> int:
    """Set torch's intra-op threads to the CPUs this process may use that other processes leave idle
    (``available_cpus()``, fewer when ``idle_cpus()`` rounds lower), unless ``OMP_NUM_THREADS``
    chooses; return the count. Call it again between long steps to follow a load that changes.

    Thread count changes no result of inference (tested); only ``evaluate`` and ``upscale`` call this,
    training keeps the threads Ray or ``OMP_NUM_THREADS`` give it. An explicit ``OMP_NUM_THREADS`` (set
    by the user, or by Ray for its workers) is the number torch already uses and is left alone.
    Measured: the default study's evaluate on 2 CPUs beside one busy process took 354 s at 2 threads,
    95 s at 1 (56 s at 2 threads without it).
    """
    if os.environ.get("OMP_NUM_THREADS"):
        return torch.get_num_threads()
    threads = available_cpus()
    idle = idle_cpus()
    if idle is not None:
        threads = max(1, min(threads, math.floor(idle + 0.5)))
    if threads != torch.get_num_threads():
        log.info("using %d CPU threads (the CPUs this process may run on that other processes leave idle)", threads)
        torch.set_num_threads(threads)
    return threads
