"""Errors meant for people: one sentence that names the problem and the fix."""

import errno


class PipelineError(Exception):
    """A failure the user can fix (bad params, bad files, unreachable services).

    The CLI prints ``str(error)`` on one line and exits non-zero, without a traceback.
    """


class ConfigError(PipelineError):
    """``params.yaml`` or a ``--set`` override is invalid."""


def os_error_sentence(error: OSError) -> str:
    """An operating-system failure (full disk, permissions, missing file) as one sentence with its fix."""
    where = f" at '{error.filename}'" if error.filename else ""
    reason = error.strerror or str(error) or type(error).__name__
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        return (f"the disk is full{where} ({reason}); free space and run the command again "
                "(finished files are kept, partly written ones were removed)")
    return f"{reason}{where}; check the path, its permissions and the free space, then run the command again"


def exception_summary(exc: BaseException, limit: int = 300) -> str:
    """A library exception's message on one line, cut to ``limit`` characters, for a one-sentence error."""
    text = " ".join(line.strip(" #") for line in str(exc).splitlines() if line.strip(" #")) or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."
