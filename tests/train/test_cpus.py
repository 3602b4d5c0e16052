"""The CPU count torch threads follow: affinity, cgroup quota, Ray's assignment, CPUs other processes keep busy;
OMP_NUM_THREADS wins."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from pipeline.train import cpus


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


@pytest.mark.parametrize(("files", "expected"), [
    ({"cpu.max": "max 100000\n"}, None),
    ({"cpu.max": "150000 100000\n"}, 1.5),
    ({"cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"}, None),
    ({"cpu/cpu.cfs_quota_us": "300000\n", "cpu/cpu.cfs_period_us": "100000\n"}, 3.0),
    ({}, None),
])
def test_cgroup_cpu_quota_reads_v2_and_v1(tmp_path: Path, files: dict[str, str], expected):
    for name, text in files.items():
        write(tmp_path / name, text)
    assert cpus.cgroup_cpu_quota(tmp_path) == expected


@pytest.mark.parametrize(("quota", "expected"), [("150000 100000", 1), ("50000 100000", 1), ("max 100000", None)])
def test_available_cpus_is_the_smallest_limit_rounded_down_and_at_least_one(tmp_path: Path, quota: str, expected):
    write(tmp_path / "cpu.max", quota)
    affinity = len(os.sched_getaffinity(0))
    assert cpus.available_cpus(tmp_path) == (min(affinity, expected) if expected else affinity)


def fake_ray(assigned: dict[str, float], mode: int = 1) -> SimpleNamespace:
    worker = SimpleNamespace(mode=mode)
    context = SimpleNamespace(worker=worker, get_assigned_resources=lambda: assigned)
    return SimpleNamespace(is_initialized=lambda: True, get_runtime_context=lambda: context,
                           _private=SimpleNamespace(worker=SimpleNamespace(WORKER_MODE=1)))


def test_ray_assignment_counts_only_inside_a_ray_worker(monkeypatch, tmp_path: Path):
    monkeypatch.delitem(sys.modules, "ray", raising=False)
    assert cpus.ray_assigned_cpus() is None  # Ray not imported: not a Ray worker, and nothing imports it
    assert "ray" not in sys.modules
    monkeypatch.setitem(sys.modules, "ray", fake_ray({"CPU": 1.0}))
    assert cpus.ray_assigned_cpus() == 1.0
    assert cpus.available_cpus(tmp_path) == 1
    monkeypatch.setitem(sys.modules, "ray", fake_ray({"CPU": 1.0}, mode=0))  # the driver
    assert cpus.ray_assigned_cpus() is None


@pytest.fixture
def restore_threads():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def test_omp_num_threads_is_left_to_choose(monkeypatch, restore_threads):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setattr(cpus, "available_cpus", lambda: pytest.fail("OMP_NUM_THREADS should decide"))
    torch.set_num_threads(1)
    assert cpus.use_available_cpus() == 1 and torch.get_num_threads() == 1


def test_without_omp_num_threads_torch_follows_the_available_cpus(monkeypatch, restore_threads):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(cpus, "available_cpus", lambda: 1)
    monkeypatch.setattr(cpus, "idle_cpus", lambda: 2.0)
    torch.set_num_threads(2)
    assert cpus.use_available_cpus() == 1 and torch.get_num_threads() == 1


def stat_lines(ticks: dict[int, tuple[int, int]]) -> str:
    """``/proc/stat`` text with ``cpuN: (busy user ticks, idle ticks)`` and a machine-wide line to skip."""
    lines = ["cpu  999 0 0 999 0 0 0 0 0 0"]
    lines += [f"cpu{index} {busy} 0 0 {idle} 0 0 0 0 0 0" for index, (busy, idle) in ticks.items()]
    return "\n".join([*lines, "intr 1 2 3", ""])


def test_idle_cpus_counts_the_idle_share_of_each_cpu_this_process_may_use(tmp_path: Path, monkeypatch):
    mine = sorted(os.sched_getaffinity(0))
    other = max(mine) + 1  # a CPU outside the affinity mask: never counted
    stat = tmp_path / "stat"
    stat.write_text(stat_lines({index: (0, 0) for index in [*mine, other]}))
    after = {index: (100, 0) if index == mine[0] else (25, 75) for index in mine} | {other: (0, 100)}
    monkeypatch.setattr(cpus.time, "sleep", lambda seconds: stat.write_text(stat_lines(after)))
    assert cpus.idle_cpus(stat=stat) == pytest.approx(0.75 * (len(mine) - 1))
    monkeypatch.setattr(cpus.time, "sleep", lambda seconds: None)
    stat.write_text("not a stat file")
    assert cpus.idle_cpus(stat=stat) is None
    assert cpus.idle_cpus(stat=tmp_path / "missing") is None


def test_a_busy_cpu_lowers_the_threads_inference_uses(monkeypatch, restore_threads):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(cpus, "available_cpus", lambda: 2)
    monkeypatch.setattr(cpus, "idle_cpus", lambda: 1.02)  # one CPU kept busy by another process
    assert cpus.use_available_cpus() == 1 and torch.get_num_threads() == 1
    monkeypatch.setattr(cpus, "idle_cpus", lambda: 1.6)  # a passing blip rounds up
    assert cpus.use_available_cpus() == 2
    monkeypatch.setattr(cpus, "idle_cpus", lambda: 0.1)  # never fewer than one
    assert cpus.use_available_cpus() == 1
    monkeypatch.setattr(cpus, "idle_cpus", lambda: None)  # no /proc/stat: the available CPUs
    assert cpus.use_available_cpus() == 2
