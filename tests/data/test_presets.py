"""Named archives resolve to a url source plus the folder holding the HR images."""

from __future__ import annotations

import pytest

from pipeline.config_data import SourceConfig
from pipeline.data.presets import PRESETS, preset_source
from pipeline.errors import PipelineError


def test_div2k_comes_from_the_official_eth_zips():
    source = preset_source(SourceConfig(kind="preset", preset="DIV2K_train_HR"))
    assert (source.kind, source.url, source.subdir) == (
        "url", "https://data.vision.ee.ethz.ch/cvl/DIV2K/DIV2K_train_HR.zip", "DIV2K_train_HR")
    assert preset_source(SourceConfig(kind="preset", preset="DIV2K_valid_HR")).subdir == "DIV2K_valid_HR"


@pytest.mark.parametrize("name", ["Set5", "Set14", "B100", "Urban100"])
def test_benchmarks_share_one_archive_and_use_its_hr_folder(name):
    source = preset_source(SourceConfig(kind="preset", preset=name))
    assert source.url == PRESETS["Set5"].url
    assert source.subdir == f"benchmark/{name}/HR"


def test_the_source_settings_win_over_the_preset():
    pinned = "ab" * 32
    source = preset_source(SourceConfig(kind="preset", preset="Set5", sha256=pinned, subdir="x",
                                        names=["baby"], optional=True))
    assert (source.sha256, source.subdir, source.names, source.optional) == (pinned, "x", ["baby"], True)


def test_unknown_preset_lists_the_known_ones():
    with pytest.raises(PipelineError, match="unknown preset 'DIV8K'; pick one of: DIV2K_train_HR"):
        preset_source(SourceConfig(kind="preset", preset="DIV8K"))
