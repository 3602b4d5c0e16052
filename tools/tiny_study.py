"""Build a tiny finished study in a folder (seconds of training): data, a sweep of three objectives x two
seeds tracked in ``<folder>/mlflow.db``, and its evaluation. For the browser check and demos.

    python tools/tiny_study.py /tmp/tiny          # then: python tools/browser_check.py --store /tmp/tiny/mlflow.db
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipeline.imageio import write_png  # noqa: E402


def tiny_params(folder: Path) -> dict:
    """The shipped params.yaml shrunk to seconds: l1, grad2 and fine_grained (scored under its second decode,
    ``anchor``, as well, as in the shipped study), two seeds, a 1-block EDSR, 8 iterations."""
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params.update(data_dir=str(folder / "data"), models_dir=str(folder / "models"), results_dir=str(folder / "results"))
    params["prepare"].update(val_count=1, benchmarks={"Tiny": {"kind": "folder", "path": str(folder / "benchmark")}})
    params["degrade"]["scales"] = [2]
    params["model"]["args"] = {"n_blocks": 1, "n_feats": 8}
    params["train"].update(iterations=8, batch_size=2, patch_size=16, val_every=4, checkpoint_every=4, progress=False)
    params["tracking"].update(uri=f"sqlite:///{folder / 'mlflow.db'}", artifact_location=str(folder / "mlartifacts"),
                              log_images=1, log_model=True)
    objectives = params["sweep"]["objectives"]
    params["sweep"].update(objectives={name: objectives[name] for name in ("l1", "grad2", "fine_grained")}, seeds=2,
                           reports=2, storage_path=str(folder / "ray_results"))  # fine_grained: a second decode
    return params


def build(folder: Path) -> Path:
    """Write the params and benchmark images, run prepare, degrade, sweep and evaluate; the params file."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for index in range(2):
        write_png(folder / "benchmark" / f"img{index}.png", rng.integers(0, 256, (48, 40, 3), dtype=np.uint8))
    params_file = folder / "params.yaml"
    params_file.write_text(yaml.safe_dump(tiny_params(folder), sort_keys=False))
    for command in ("prepare", "degrade", "sweep", "evaluate"):
        subprocess.run([sys.executable, "-m", "pipeline", "-q", command, "--params", str(params_file)], cwd=ROOT,
                       check=True, stdout=subprocess.DEVNULL)
    return params_file


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    print(build(parser.parse_args().folder.resolve()))
