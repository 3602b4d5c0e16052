"""DVC stage 'degrade': parse arguments and call the pipeline (see dvc.yaml)."""

import sys

from pipeline.cli import main

if __name__ == "__main__":
    sys.exit(main(["degrade", *sys.argv[1:]]))
