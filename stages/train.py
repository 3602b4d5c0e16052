"""DVC stage 'train': parse arguments and call the pipeline (see dvc.yaml)."""

import sys

from pipeline.cli import main

if __name__ == "__main__":
    sys.exit(main(["train", *sys.argv[1:]]))
