"""The data stages' sections of the params schema (``pipeline.config``): ``prepare`` (where the HR
images come from) and ``degrade`` (how the LR images are made from them)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from pipeline.config_base import FolderName, Strict


class SourceConfig(Strict):
    """Where HR images come from.

    ``builtin``: photographs bundled with installed packages (offline; ``collection`` picks the
    train/val ``photos`` or the ``benchmark`` test set, disjoint); ``folder``: a directory,
    searched recursively; ``url``: an archive (zip/tar) checked against ``sha256``;
    ``preset``: a named public archive (DIV2K_train_HR, Set5, ...).
    """

    kind: Literal["builtin", "folder", "url", "preset"] = Field("builtin", description="source type")
    collection: Literal["photos", "benchmark"] = Field("photos", description="builtin images: the train/val "
                                                       "photos or the disjoint benchmark set (kind builtin)")
    path: Path | None = Field(None, description="folder of images (kind folder)")
    url: str | None = Field(None, description="zip/tar archive URL (kind url)")
    sha256: str | None = Field(None, description="expected sha256 of the archive; logged when absent")
    preset: str | None = Field(None, description="DIV2K_train_HR, DIV2K_valid_HR, Set5, Set14, B100, Urban100")
    subdir: str | None = Field(None, description="folder inside a url archive that holds the images")
    names: list[str] | None = Field(None, description="keep only these image names (without .png)")
    optional: bool = Field(False, description="skip with a warning when missing or unreachable")

    @model_validator(mode="after")
    def _fields_for_kind(self) -> "SourceConfig":
        need = {"folder": "path", "url": "url", "preset": "preset"}.get(self.kind)
        if need and getattr(self, need) is None:
            raise ValueError(f"a '{self.kind}' source needs '{need}'")
        if self.sha256 is not None and len(self.sha256) != 64:
            raise ValueError("sha256 must be 64 hexadecimal characters")
        return self


class PrepareConfig(Strict):
    source: SourceConfig = SourceConfig()
    val_count: int = Field(2, ge=1, description="images held out for validation")
    min_side: int = Field(96, ge=8, description="images smaller than this are skipped")
    benchmarks: dict[FolderName, SourceConfig] = Field({}, description="named test sets: name -> source")
    cache_dir: Path = Field(Path("~/.cache/srloss"), description="downloads and extracted archives")


class BlurConfig(Strict):
    """Gaussian blur before downscaling; ``sigma_y``/``angle`` make it anisotropic."""

    sigma: float = Field(1.0, gt=0, description="std (HR pixels) along x")
    sigma_y: float | None = Field(None, gt=0, description="std along y; None = isotropic")
    angle: float = Field(0.0, description="rotation of the anisotropic kernel, degrees")
    kernel_size: int = Field(21, ge=3, description="odd kernel side")

    @field_validator("kernel_size")
    @classmethod
    def _odd(cls, v: int) -> int:
        if v % 2 == 0:
            raise ValueError("kernel_size must be odd")
        return v


class NoiseConfig(Strict):
    """Additive noise after downscaling: Gaussian (sigma on 0..255) or Poisson (scale)."""

    kind: Literal["gaussian", "poisson"] = Field("gaussian", description="noise model")
    sigma: float = Field(5.0, ge=0, description="Gaussian std on 0..255")
    scale: float = Field(1.0, gt=0, description="Poisson strength (photon-count scale)")


class JpegConfig(Strict):
    quality: int = Field(75, ge=1, le=100, description="JPEG quality")


class DegradationPreset(Strict):
    """blur -> bicubic downscale (MATLAB imresize) -> noise -> JPEG; each step optional."""

    blur: BlurConfig | None = None
    noise: NoiseConfig | None = None
    jpeg: JpegConfig | None = None


class DegradeConfig(Strict):
    scales: list[int] = Field([2, 3, 4], description="integer scales to make LR images for")
    presets: dict[FolderName, DegradationPreset] = Field({"bicubic": DegradationPreset()}, description="name -> {blur, noise, jpeg}; {} is plain bicubic")

    @field_validator("scales")
    @classmethod
    def _scales(cls, v: list[int]) -> list[int]:
        if not v or any(s < 2 for s in v):
            raise ValueError("scales must be a non-empty list of integers >= 2")
        return sorted(set(v))
