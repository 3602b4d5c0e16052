"""The ``folder`` HR source: every image under a directory, recursively.

Output names are stable and unique: the path relative to the folder with ``/`` written
as ``__`` and the suffix changed to ``.png`` (``set/a/b.jpg`` -> ``a__b.png``).
"""

from __future__ import annotations

from pathlib import Path

from pipeline.errors import PipelineError
from pipeline.imageio import list_images


def output_name(relative: Path) -> str:
    """``a/b/c.JPG`` -> ``a__b__c.png``."""
    return "__".join(relative.with_suffix(".png").parts)


def folder_images(folder: Path) -> dict[str, Path]:
    """Output file name -> image file, for every image under ``folder``, sorted by name."""
    folder = Path(folder).expanduser()
    images: dict[str, Path] = {}
    for path in list_images(folder):
        name = output_name(path.relative_to(folder))
        if name in images:
            raise PipelineError(f"'{images[name]}' and '{path}' would both be written as '{name}'; "
                                "rename one of them")
        images[name] = path
    return dict(sorted(images.items()))
