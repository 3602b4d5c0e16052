"""The builtin sources: photographs bundled with scikit-image and matplotlib, offline."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.data.builtin import BENCHMARK, PHOTOS, builtin_images
from pipeline.errors import PipelineError
from pipeline.imageio import read_image


def test_every_photo_is_a_bundled_colour_photograph():
    images = builtin_images()
    assert list(images) == sorted(f"{name}.png" for name in PHOTOS)
    assert len(images) >= 6
    for path in images.values():
        pixels = read_image(path).astype(np.int16)
        assert min(pixels.shape[:2]) >= 256
        assert np.abs(pixels[..., 0] - pixels[..., 1]).mean() > 2, f"{path.name} looks greyscale"


def test_the_benchmark_collection_is_disjoint_from_the_photos_in_names_and_pixels():
    photos = {path.resolve() for path in builtin_images().values()}
    benchmark = builtin_images(collection="benchmark")
    assert list(benchmark) == sorted(f"{name}.png" for name in BENCHMARK)
    assert not photos & {path.resolve() for path in benchmark.values()}
    photo_digests = {read_image(path).tobytes()[:4096] for path in photos}
    for path in benchmark.values():
        pixels = read_image(path)
        assert min(pixels.shape[:2]) >= 256, path
        assert pixels.tobytes()[:4096] not in photo_digests
    assert "grace_hopper.png" in benchmark and "brick.png" in benchmark


def test_names_pick_a_sorted_subset():
    assert list(builtin_images(["rocket", "astronaut", "rocket"])) == ["astronaut.png", "rocket.png"]


def test_unknown_name_lists_the_choices():
    with pytest.raises(PipelineError, match="unknown builtin image.*camera.*'photos'.*pick names from: astronaut"):
        builtin_images(["camera"])
