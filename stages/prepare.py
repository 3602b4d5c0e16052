"""DVC stage 'prepare': parse arguments and call the pipeline (see dvc.yaml).

It runs the code of the project it is in (the code dvc.yaml's deps name), not a copy installed elsewhere,
in this process and in the processes it starts (Ray workers).
"""

import os
import sys
from pathlib import Path

PROJECT = str(Path(__file__).resolve().parent.parent)
sys.path.insert(0, PROJECT)
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [PROJECT, os.environ.get("PYTHONPATH")]))

from pipeline.cli import main  # noqa: E402  (after the path is set)

if __name__ == "__main__":
    sys.exit(main(["prepare", *sys.argv[1:]]))
