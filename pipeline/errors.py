"""Errors meant for people: one sentence that names the problem and the fix."""


class PipelineError(Exception):
    """A failure the user can fix (bad params, bad files, unreachable services).

    The CLI prints ``str(error)`` on one line and exits non-zero, without a traceback.
    """


class ConfigError(PipelineError):
    """``params.yaml`` or a ``--set`` override is invalid."""
