"""Run a command in a session of its own and forward the stop signals to it.

A signal to a whole process group (``kill -TERM -<pgid>``, Ctrl-C, a killed ``dvc repro``'s group)
would also reach the Ray processes a sweep starts (they inherit the driver's group): they would die
with stack dumps before the driver could stop its trials and save their state. So ``python -m
pipeline sweep`` re-runs itself as a child in a new session, forwards SIGTERM, SIGINT and SIGUSR1
to it, and exits with its status; the child receives ``SIGTERM`` should this process die (Linux
``PR_SET_PDEATHSIG``), so it is never orphaned. The child knows itself by ``SESSION_VARIABLE``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Sequence

from pipeline.interrupt import STOP_SIGNALS, end_with_parent

SESSION_VARIABLE = "SRLOSS_OWN_SESSION"


def in_own_session() -> bool:
    return os.environ.get(SESSION_VARIABLE) == "1" and os.getsid(0) == os.getpid()


def run_in_own_session(argv: Sequence[str]) -> int:
    """``python -m pipeline <argv>`` in a new session; its exit status (128 + n when a signal n ended it)."""
    child = subprocess.Popen([sys.executable, "-m", "pipeline", *argv], start_new_session=True,
                             env={**os.environ, SESSION_VARIABLE: "1"}, preexec_fn=end_with_parent)

    def forward(signum: int, _frame: object) -> None:
        try:
            child.send_signal(signum)
        except ProcessLookupError:
            pass

    for signum in STOP_SIGNALS:
        signal.signal(signum, forward)
    status = child.wait()
    return 128 - status if status < 0 else status
