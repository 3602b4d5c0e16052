"""The manifests of the prepared data read back: ``<data_dir>/hr/manifest.json`` (written by ``prepare``)
and ``<data_dir>/lr/manifest.json`` (written by ``degrade``), which training runs and sweeps record."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pipeline.errors import PipelineError


def read_manifests(data_dir: Path) -> dict[str, Any]:
    """The prepare/degrade manifests (``{"hr": ..., "lr": ...}``) that exist."""
    manifests = {}
    for stage in ("hr", "lr"):
        path = data_dir / stage / "manifest.json"
        if path.is_file():
            try:
                manifests[stage] = json.loads(path.read_text())
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise PipelineError(f"data manifest '{path}' is damaged ({exc}); run the prepare and degrade "
                                    "stages again (`dvc repro degrade`)") from None
    return manifests
