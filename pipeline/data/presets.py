"""Named public archives: a ``preset`` source is a ``url`` source plus the folder inside it.

DIV2K (Agustsson & Timofte, CVPRW 2017) comes from ETH Zurich's official zips. Set5
(Bevilacqua et al. 2012), Set14 (Zeyde et al. 2010), B100 (Martin et al. 2001) and Urban100
(Huang et al. 2015) come from the benchmark archive published with EDSR (Lim et al. 2017),
which holds ``benchmark/<Set>/HR``.

Every ``sha256`` is None: no archive could be downloaded where this table was written, so
none could be verified. The first download logs the computed sha256; pin it with
``sha256:`` on the source in params.yaml.
"""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.config_data import SourceConfig
from pipeline.errors import PipelineError

EDSR_BENCHMARK_URL = "https://cv.snu.ac.kr/research/EDSR/benchmark.tar"


@dataclass(frozen=True)
class Preset:
    """Where a named archive lives and which folder inside it holds the HR images."""

    url: str
    subdir: str
    sha256: str | None = None


PRESETS: dict[str, Preset] = {
    "DIV2K_train_HR": Preset("https://data.vision.ee.ethz.ch/cvl/DIV2K/DIV2K_train_HR.zip", "DIV2K_train_HR"),
    "DIV2K_valid_HR": Preset("https://data.vision.ee.ethz.ch/cvl/DIV2K/DIV2K_valid_HR.zip", "DIV2K_valid_HR"),
    "Set5": Preset(EDSR_BENCHMARK_URL, "benchmark/Set5/HR"),
    "Set14": Preset(EDSR_BENCHMARK_URL, "benchmark/Set14/HR"),
    "B100": Preset(EDSR_BENCHMARK_URL, "benchmark/B100/HR"),
    "Urban100": Preset(EDSR_BENCHMARK_URL, "benchmark/Urban100/HR"),
}


def preset_source(source: SourceConfig) -> SourceConfig:
    """The ``url`` source a ``preset`` source stands for; its own sha256, subdir, names and optional win."""
    preset = PRESETS.get(source.preset or "")
    if preset is None:
        raise PipelineError(f"unknown preset '{source.preset}'; pick one of: {', '.join(PRESETS)}")
    return SourceConfig(kind="url", url=preset.url, sha256=source.sha256 or preset.sha256,
                        subdir=source.subdir or preset.subdir, names=source.names, optional=source.optional)
