"""Stop signals turned into a resumable end: SIGTERM (what a scheduler or ``kill`` sends), SIGINT
(Ctrl-C) and SIGUSR1 (what SLURM's ``--signal`` sends before a time limit or preemption).

The CLI installs one ``StopSignals`` per command. In *record* mode (``train``, ``sweep``) the first
signal is noted and the work stops at its next safe point (the end of a training iteration, after
writing ``last.pt``; the sweep's Ray Tune loop, after saving its state), raising ``Interrupted``; a
second signal raises at once. In *raise* mode (the other commands) the first signal raises at once:
their outputs are written atomically at the end, so the earlier ones are kept.

A command ended by a stop signal exits with status 128 + the signal's number (SIGINT 130, SIGUSR1
138, SIGTERM 143), the shell's convention for a process ended by that signal.
"""

from __future__ import annotations

import ctypes
import os
import signal
from collections.abc import Callable
from types import FrameType

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1)
PR_SET_PDEATHSIG = 1

Handler = Callable[[int, FrameType | None], object]


class Interrupted(KeyboardInterrupt):
    """A command stopped by ``signum``; ``where`` says how far it got (``at iteration 150``)."""

    def __init__(self, signum: int, where: str):
        super().__init__(f"interrupted {where} ({signal_name(signum)})")
        self.signum = signum
        self.where = where

    @property
    def exit_status(self) -> int:
        return 128 + self.signum


def signal_name(signum: int) -> str:
    return signal.Signals(signum).name


class StopSignals:
    """The first stop signal received (``received``), once ``install``-ed in the main thread; one
    raised at once is ``Interrupted`` ``doing`` (``while evaluating``).

    ``forward`` (set while a Ray Tune run is in progress) is called with the first signal instead
    of raising: Tune then stops its trials and saves its state (``pipeline.tune.interruption``).
    """

    def __init__(self, record: bool, doing: str = "while running"):
        self.record = record
        self.doing = doing
        self.received: int | None = None
        self.forward: Handler | None = None

    def install(self) -> None:
        for signum in STOP_SIGNALS:
            signal.signal(signum, self.handle)

    def handle(self, signum: int, frame: FrameType | None) -> None:
        first = self.received is None
        if first:
            self.received = signum
        if first and self.forward is not None:
            self.forward(signum, frame)
        elif not (first and self.record):
            raise Interrupted(signum, self.doing)

    def check(self, where: str) -> None:
        """Raise ``Interrupted`` when a signal was recorded; ``where`` names the safe point reached."""
        if self.received is not None:
            raise Interrupted(self.received, where)


def end_with_parent(signum: int = signal.SIGTERM) -> None:
    """Have the kernel send ``signum`` to this process when its parent exits (Linux ``PR_SET_PDEATHSIG``).

    A DVC stage calls it: ``dvc repro`` killed on its own would otherwise leave its stage running.
    """
    parent = os.getppid()
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, int(signum), 0, 0, 0) != 0:
        return  # not Linux, or not allowed: the stage then outlives a killed dvc, as before
    if os.getppid() != parent:  # the parent died before the request: nothing would ever send it
        os.kill(os.getpid(), signum)
