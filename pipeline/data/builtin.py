"""The offline sources: photographs shipped inside installed packages (scikit-image, matplotlib).

Two disjoint collections, so the default study trains and tests on different images:

- ``photos`` (the HR train/val source): scikit-image's colour photographs. ``motorcycle_right``
  is left out: the stereo twin of ``motorcycle_left`` would leak across a split.
- ``benchmark`` (the ``Builtin`` test set): matplotlib's colour portrait of Grace Hopper and
  scikit-image's greyscale natural scenes (camera, coins, moon) and textures (brick, grass,
  gravel). It is not a published benchmark: its scores are not comparable with papers' Set5.

Only files bundled with the packages are read (never ``skimage.data`` functions that fetch over
the network). Synthetic, document and RGBA images are in neither collection.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib
import skimage

from pipeline.errors import PipelineError

PHOTOS: dict[str, tuple[str, str]] = {
    "astronaut": ("skimage", "astronaut.png"),
    "chelsea": ("skimage", "chelsea.png"),
    "coffee": ("skimage", "coffee.png"),
    "hubble_deep_field": ("skimage", "hubble_deep_field.jpg"),
    "immunohistochemistry": ("skimage", "ihc.png"),
    "motorcycle": ("skimage", "motorcycle_left.png"),
    "retina": ("skimage", "retina.jpg"),
    "rocket": ("skimage", "rocket.jpg"),
}
BENCHMARK: dict[str, tuple[str, str]] = {
    "brick": ("skimage", "brick.png"),
    "camera": ("skimage", "camera.png"),
    "coins": ("skimage", "coins.png"),
    "grace_hopper": ("matplotlib", "sample_data/grace_hopper.jpg"),
    "grass": ("skimage", "grass.png"),
    "gravel": ("skimage", "gravel.png"),
    "moon": ("skimage", "moon.png"),
}
COLLECTIONS: dict[str, dict[str, tuple[str, str]]] = {"photos": PHOTOS, "benchmark": BENCHMARK}
PACKAGES = {"skimage": skimage, "matplotlib": matplotlib}


def package_data_folder(package: str) -> Path:
    """The folder of bundled data inside an installed package (``skimage/data``, ``matplotlib/mpl-data``)."""
    module = PACKAGES[package]
    return Path(module.__file__).resolve().parent / ("data" if package == "skimage" else "mpl-data")


def builtin_images(names: list[str] | None = None, collection: str = "photos") -> dict[str, Path]:
    """Output file name (``<name>.png``) -> bundled file, for ``names`` of ``collection`` (default: all)."""
    files = COLLECTIONS[collection]
    wanted = list(files) if names is None else names
    unknown = sorted(set(wanted) - set(files))
    if unknown:
        raise PipelineError(f"unknown builtin image(s) {', '.join(unknown)} in the '{collection}' collection; "
                            f"pick names from: {', '.join(files)}")
    images = {f"{name}.png": package_data_folder(files[name][0]) / files[name][1] for name in sorted(set(wanted))}
    missing = [str(path) for path in images.values() if not path.is_file()]
    if missing:
        raise PipelineError(f"the installed packages do not ship {', '.join(missing)}; reinstall them from "
                            "requirements.lock or use a 'folder' source")
    return images
