"""Ending the process trees the sweep tests start (a sweep driver, a Ray head), by session."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path


def session_members(session: int) -> list[int]:
    """Live (not zombie) processes of a session, from /proc."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z" and int(fields[3]) == session:
            members.append(int(stat.parent.name))
    return members


def end_session(session: int, grace: float = 10.0) -> None:
    """Wait up to ``grace`` seconds for the session's processes to exit, then SIGKILL each one left."""
    deadline = time.monotonic() + grace
    while session_members(session) and time.monotonic() < deadline:
        time.sleep(0.2)
    for pid in session_members(session):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
