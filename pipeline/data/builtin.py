"""The offline HR source: colour photographs shipped inside the scikit-image wheel.

Only files bundled with the package are used (never ``skimage.data`` functions that
fetch over the network). Greyscale, synthetic and RGBA images are left out, and so is
``motorcycle_right`` (the stereo twin of ``motorcycle_left`` would leak across a split).
"""

from __future__ import annotations

from pathlib import Path

import skimage

from pipeline.errors import PipelineError

BUILTIN_FILES: dict[str, str] = {
    "astronaut": "astronaut.png",
    "chelsea": "chelsea.png",
    "coffee": "coffee.png",
    "hubble_deep_field": "hubble_deep_field.jpg",
    "immunohistochemistry": "ihc.png",
    "motorcycle": "motorcycle_left.png",
    "retina": "retina.jpg",
    "rocket": "rocket.jpg",
}


def builtin_folder() -> Path:
    """The ``data`` folder inside the installed scikit-image package."""
    return Path(skimage.__file__).resolve().parent / "data"


def builtin_images(names: list[str] | None = None) -> dict[str, Path]:
    """Output file name (``<name>.png``) -> bundled file, for ``names`` (default: all)."""
    wanted = list(BUILTIN_FILES) if names is None else names
    unknown = sorted(set(wanted) - set(BUILTIN_FILES))
    if unknown:
        raise PipelineError(f"unknown builtin image(s) {', '.join(unknown)}; "
                            f"pick names from: {', '.join(BUILTIN_FILES)}")
    folder = builtin_folder()
    images = {f"{name}.png": folder / BUILTIN_FILES[name] for name in sorted(set(wanted))}
    missing = [str(path) for path in images.values() if not path.is_file()]
    if missing:
        raise PipelineError(f"scikit-image {skimage.__version__} does not ship {', '.join(missing)}; "
                            "reinstall scikit-image from requirements.lock or use a 'folder' source")
    return images
