"""The folder source: recursive, with stable and unique output names."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.data.folder import folder_images, output_name
from pipeline.errors import PipelineError


def test_output_name_flattens_the_relative_path():
    assert output_name(Path("a/b/c.JPG")) == "a__b__c.png"
    assert output_name(Path("x.tiff")) == "x.png"


def test_images_are_found_recursively_and_sorted(tmp_path):
    for name in ["z.png", "sub/a.jpg", "sub/deeper/b.BMP", "notes.txt", "sub/data.npy"]:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    images = folder_images(tmp_path)
    assert list(images) == ["sub__a.png", "sub__deeper__b.png", "z.png"]
    assert images["sub__deeper__b.png"] == tmp_path / "sub/deeper/b.BMP"


def test_colliding_names_are_an_error(tmp_path):
    for name in ["a.png", "a.jpg"]:
        (tmp_path / name).write_bytes(b"")
    with pytest.raises(PipelineError, match="would both be written as 'a.png'; rename one"):
        folder_images(tmp_path)
