"""The reaper ends the children of Ray's raylet when the sweep driver dies, and only then."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from pipeline.tune.reaper import DONE, children, watch

ROOT = Path(__file__).resolve().parents[2]
PARENT = ("import subprocess, sys, time\n"
          "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
          "print(child.pid, flush=True)\n"
          "time.sleep(60)")


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"


@pytest.mark.parametrize("clean_end", [False, True], ids=["driver-killed", "driver-done"])
def test_the_noted_children_are_killed_only_when_the_driver_dies(clean_end):
    parent = subprocess.Popen([sys.executable, "-c", PARENT], stdout=subprocess.PIPE, text=True)
    child = int(parent.stdout.readline())
    read_end, write_end = os.pipe()
    killed: list[int] = []
    watcher = threading.Thread(target=lambda: killed.extend(watch(parent.pid, read_end)))
    try:
        assert child in children(parent.pid)
        watcher.start()
        time.sleep(0.3)
        parent.kill()  # the raylet dies with the driver; its child is re-parented and lives on
        parent.wait()
        if clean_end:
            os.write(write_end, DONE)
        os.close(write_end)  # the driver's end of the pipe closes however it ends
        watcher.join(timeout=10)
        assert killed == ([] if clean_end else [child])
        deadline = time.monotonic() + 5
        while alive(child) and not clean_end and time.monotonic() < deadline:
            time.sleep(0.05)
        assert alive(child) == clean_end
    finally:
        os.close(read_end)
        if alive(child):
            os.kill(child, signal.SIGKILL)


@pytest.mark.slow
def test_no_ray_process_outlives_a_sweep_driver_killed_with_sigkill(tmp_path):
    driver = subprocess.Popen(
        [sys.executable, "-c", "import os, time\n"
         "from pipeline.config import RayConfig\nfrom pipeline.tune.cluster import ray_cluster\n"
         "with ray_cluster(RayConfig(num_cpus=1)):\n    print('ready', flush=True)\n    time.sleep(120)"],
        stdout=subprocess.PIPE, text=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        assert driver.stdout.readline().strip() == "ready"
        raylets = [pid for pid in children(driver.pid) if "raylet" in Path(f"/proc/{pid}/cmdline").read_text()]
        agents = [pid for raylet in raylets for pid in children(raylet)]  # DashboardAgent, RuntimeEnvAgent, workers
        assert len(raylets) == 1 and len(agents) >= 2
    finally:
        driver.kill()
        driver.wait()
    deadline = time.monotonic() + 20
    while any(map(alive, agents)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(map(alive, [*raylets, *agents]))
