"""Work done by tiled upscaling: LR pixels the network processes, as a multiple of the image's.

For each tile setting, over the LR images of ``--images`` folders (each HR image cut to a multiple
of ``--scale`` and divided by it, as ``degrade`` does) and square synthetic sides (``--sides``):
- ``now``: ``pipeline.inference.computed_pixels`` (the fewest near-equal windows);
- ``full windows``: the earlier scheme, every window ``min(tile, side)`` pixels, the last one
  shifted back to end at the border;
the ratio is summed pixels computed / summed image pixels (1.0 = no extra work). Pure arithmetic:
no network runs, so the figures do not depend on the machine.

Run from the project root, e.g.
``PYTHONPATH=. python bench/tiling_work.py --images data/benchmarks/Set5/hr data/benchmarks/Set14/hr``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from PIL import Image

from pipeline.imageio import list_images
from pipeline.inference import computed_pixels


def full_window_pixels(length: int, tile: int, overlap: int) -> int:
    """Pixels along one axis with windows of ``min(tile, length)`` stepping by ``tile - 2 * overlap``."""
    size = min(tile, length)
    if size == length:
        return length
    return size * len([*range(0, length - size, size - 2 * overlap), length - size])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", nargs="*", default=[], help="folders of HR images")
    parser.add_argument("--scale", type=int, default=2)
    parser.add_argument("--sides", nargs="*", type=int, default=[2000], help="square LR image sides")
    parser.add_argument("--tiles", nargs="*", type=int, default=[64, 128, 256, 512])
    parser.add_argument("--overlap", type=int, default=16)
    args = parser.parse_args()
    sizes: dict[str, list[tuple[int, int]]] = {}
    for folder in map(Path, args.images):
        shapes = [Image.open(path).size for path in list_images(folder)]
        sizes[str(folder)] = [(h // args.scale, w // args.scale) for w, h in shapes]
    for side in args.sides:
        sizes[f"{side}x{side}"] = [(side, side)]
    print(f"overlap {args.overlap}; LR sizes at x{args.scale}; ratio = computed / image pixels")
    print(f"| images | tile | now | full windows |\n| --- | --- | --- | --- |")
    for name, shapes in sizes.items():
        image = sum(h * w for h, w in shapes)
        for tile in args.tiles:
            now = sum(computed_pixels(h, w, tile, args.overlap) for h, w in shapes)
            old = sum(full_window_pixels(h, tile, args.overlap) * full_window_pixels(w, tile, args.overlap)
                      for h, w in shapes)
            print(f"| {name} ({len(shapes)}) | {tile} | {now / image:.3f} | {old / image:.3f} |")


if __name__ == "__main__":
    main()
