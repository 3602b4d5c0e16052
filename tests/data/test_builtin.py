"""The builtin source: scikit-image's bundled colour photographs, offline."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.data.builtin import BUILTIN_FILES, builtin_folder, builtin_images
from pipeline.errors import PipelineError
from pipeline.imageio import read_image


def test_every_builtin_is_a_bundled_colour_photograph():
    images = builtin_images()
    assert list(images) == sorted(f"{name}.png" for name in BUILTIN_FILES)
    assert len(images) >= 6
    for path in images.values():
        assert path.parent == builtin_folder()
        pixels = read_image(path).astype(np.int16)
        assert min(pixels.shape[:2]) >= 256
        assert np.abs(pixels[..., 0] - pixels[..., 1]).mean() > 2, f"{path.name} looks greyscale"


def test_names_pick_a_sorted_subset():
    assert list(builtin_images(["rocket", "astronaut", "rocket"])) == ["astronaut.png", "rocket.png"]


def test_unknown_name_lists_the_choices():
    with pytest.raises(PipelineError, match="unknown builtin image.*camera.*pick names from: astronaut"):
        builtin_images(["camera"])
