"""A watchdog that ends the local Ray cluster's agents when the sweep driver dies.

Ray's kernel fate-sharing ends the GCS and the raylet when the driver that started them dies, even
by ``kill -9``, but the raylet's own children (``ray::DashboardAgent``, ``ray::RuntimeEnvAgent``) are
re-parented and live on (seen with the pinned Ray on Linux). The reaper is a small stdlib-only
process that reads a pipe from the driver: while the pipe is open it notes the raylet's children
every ``POLL_SECONDS``; when the pipe closes without the word ``done`` (the driver died), it kills
the noted processes that still run with the same start time (so a reused pid is never hit).

Run as ``python reaper.py <raylet pid> [<pid>:<start time> ...]`` with the pipe on stdin (``start_reaper``).
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import subprocess
import sys
from pathlib import Path

POLL_SECONDS = 1.0
DONE = b"done\n"


def children(pid: int) -> dict[int, str]:
    """The child pids of ``pid`` with their start times (field 22 of ``/proc/<pid>/stat``)."""
    found = {}
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found.update({int(child): _start_time(int(child)) for child in (task / "children").read_text().split()})
        except (OSError, ValueError):
            continue
    return {child: started for child, started in found.items() if started}


def _start_time(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return ""


def watch(raylet: int, pipe: int, noted: dict[int, str] | None = None) -> list[int]:
    """Note ``raylet``'s children (beyond ``noted``) until ``pipe`` closes; kill them unless the
    driver wrote ``DONE``. Returns the pids killed."""
    noted = dict(noted or {})
    received = b""
    while True:
        noted.update(children(raylet))
        readable, _, _ = select.select([pipe], [], [], POLL_SECONDS)
        if readable:
            chunk = os.read(pipe, 64)
            if chunk:
                received += chunk
                continue
            break
    if received.endswith(DONE):
        return []
    killed = []
    for pid, started in noted.items():
        if _start_time(pid) == started:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
    return killed


def start_reaper(raylet: int) -> subprocess.Popen:
    """Start the reaper for ``raylet`` in its own session (a signal to the driver's group spares it),
    handing it the raylet's children of now, so a driver killed at once leaves none; write ``DONE``
    to its stdin and close it when the cluster was shut down cleanly."""
    noted = [f"{pid}:{started}" for pid, started in children(raylet).items()]
    return subprocess.Popen([sys.executable, __file__, str(raylet), *noted], stdin=subprocess.PIPE,
                            start_new_session=True, close_fds=True)


if __name__ == "__main__":
    watch(int(sys.argv[1]), sys.stdin.fileno(),
          {int(pid): started for pid, started in (entry.split(":") for entry in sys.argv[2:])})
