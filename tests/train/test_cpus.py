"""The CPU count torch threads follow: affinity, cgroup quota, Ray's assignment; OMP_NUM_THREADS wins."""

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
    torch.set_num_threads(2)
    assert cpus.use_available_cpus() == 1 and torch.get_num_threads() == 1
