"""A sweep stopped by a signal (``pipeline.interrupt``): Ray Tune stops its trials and saves its
state, the MLflow runs the sweep opened end KILLED, and ``--resume`` goes on from the checkpoints.

Ray Tune catches SIGINT and SIGUSR1 itself while it runs (it then ends its loop, saves the
experiment state with every unfinished trial, and stops the trials' actors); ``ForwardStop``
puts the CLI's handler back in front of Tune's for all three stop signals (SIGTERM included),
so that the signal is both recorded and handed to Tune.
"""

from __future__ import annotations

import signal
from typing import Any

import mlflow
from ray import tune

from pipeline.interrupt import StopSignals
from pipeline.tune.trial import PARENT_TAG


class ForwardStop(tune.Callback):
    """At the start of ``Tuner.fit``: hand the stop signals to Tune's own handler (at once, when one
    came before Tune started). It keeps no state (Tune pickles it with the run and a restored run
    gets the pickled copy): the live ``StopSignals`` is the one whose handler SIGTERM has, which Tune
    leaves alone."""

    def setup(self, **info: Any) -> None:
        signals = getattr(signal.getsignal(signal.SIGTERM), "__self__", None)
        if not isinstance(signals, StopSignals):
            return  # not run by the CLI: Tune handles SIGINT and SIGUSR1 alone
        signals.forward = signal.getsignal(signal.SIGUSR1)  # Tune's handler, installed just before
        signals.install()
        if signals.received is not None:
            signals.forward(signals.received, None)


def kill_running_children(uri: str, experiment_id: str, parent_run_id: str) -> list[str]:
    """End every child run of the sweep still RUNNING as KILLED (their trials were stopped); their ids.

    Call it once Ray is shut down: no trial can write to its run any more. A resumed trial continues
    its run (``pipeline.tune.trial``), so none is duplicated."""
    client = mlflow.MlflowClient(uri)
    runs = client.search_runs([experiment_id], f"tags.`{PARENT_TAG}` = '{parent_run_id}' and "
                                              "attributes.status = 'RUNNING'")
    for run in runs:
        client.set_tag(run.info.run_id, "stopped_by", "Interrupted")
        client.set_terminated(run.info.run_id, "KILLED")
    return [run.info.run_id for run in runs]
