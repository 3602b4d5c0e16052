"""HR image sources and the ``prepare`` stage.

``builtin`` (scikit-image's bundled photographs), ``folder`` (a directory, recursively),
``download`` (archives from a URL, sha256-checked and safely extracted), ``presets`` (named
public archives such as DIV2K and Set5) and ``prepare`` (the train/val split and benchmark
sets written as PNGs under ``data_dir``).
"""
