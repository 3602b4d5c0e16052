"""The rules every section of the params schema (``pipeline.config``) follows.

``Strict``: unknown keys are errors and assignments are validated. ``FolderName``: a name that
becomes a folder (sweep, objective, benchmark, preset) is one plain folder name.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict

PLAIN_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}")


def _plain_name(value: str) -> str:
    """A name that becomes a folder (sweep, objective, benchmark, preset) is one plain folder name."""
    if not PLAIN_NAME.fullmatch(value):
        raise ValueError(f"{value!r} is not a plain folder name (it becomes a folder, so it must be 1-100 letters, "
                         "digits, '_', '-' or '.', not starting with '.'; e.g. 'study')")
    return value


FolderName = Annotated[str, AfterValidator(_plain_name)]


class Strict(BaseModel):
    """Base for every section: unknown keys are errors, assignments are validated."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)
