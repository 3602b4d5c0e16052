"""Params of a tiny sweep on the ``tiny_data`` images, for the sweep tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pipeline.config import Params
from pipeline.params_file import validate


def sweep_params(tiny_data: Params, root: Path, sweep: dict[str, Any], tracking: bool = True,
                 iterations: int = 12) -> Params:
    """``tiny_data`` with a 1-block EDSR, outputs and Ray results under ``root``, a local MLflow
    store (models not logged: seconds each) and ``sweep`` (its storage path and name defaulted)."""
    data = tiny_data.model_dump(mode="json")
    data.update(models_dir=str(root / "models"), results_dir=str(root / "results"))
    data["model"] = {"name": "edsr", "args": {"n_blocks": 1, "n_feats": 8}}
    data["train"]["iterations"] = iterations
    data["tracking"] = {"enabled": tracking, "uri": f"sqlite:///{root / 'mlflow.db'}", "experiment": "sweeps",
                        "artifact_location": str(root / "mlartifacts"), "log_model": False, "log_images": 1}
    data["sweep"] = {"storage_path": str(root / "ray_results"), "name": "test", **sweep}
    return validate(data)
