"""The params schema: the typed, validated form of ``params.yaml`` (read by ``pipeline.params_file``).

This is the one place defaults live (the data stages' sections are in ``pipeline.config_data``).
Unknown keys, wrong types and impossible values fail at load time with one sentence naming the key
and what is allowed.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
from pathlib import Path
from typing import Any, Literal, Union

from pydantic import Field, field_validator, model_validator

from pipeline.config_base import FolderName, Strict
from pipeline.config_data import DegradeConfig, PrepareConfig

CODE_ROOT = Path(__file__).resolve().parent.parent  # the code that runs (its git commit is recorded), never
# the project a command works on: that is the folder of its params file (see pipeline.params_file.find_params)
SEED_LIMIT = 2**32  # numpy and torch seeds are unsigned 32-bit numbers


# ------------------------------------------------------------------ metrics
class LpipsConfig(Strict):
    """LPIPS (Zhang et al. 2018). ``weights``: a local backbone checkpoint (.pth)."""

    enabled: bool = Field(True, description="compute LPIPS when its weights are available")
    net: Literal["alex", "vgg", "squeeze"] = Field("alex", description="LPIPS backbone")
    weights: Path | None = Field(None, description="local ImageNet backbone checkpoint (.pth)")


class FidConfig(Strict):
    """FID (Heusel et al. 2017) on patches. ``weights``: pytorch-fid's Inception checkpoint
    (``pt_inception-2015-12-05-6726825d.pth``); without it FID is reported unavailable."""

    weights: Path | None = Field(None, description="local FID Inception checkpoint (.pth); None = unavailable")
    patch: int = Field(64, ge=16, description="side of the non-overlapping SR/HR patches FID compares")
    dims: Literal[64, 192, 768, 2048] = Field(2048, description="feature tap (2048 = pool3, as papers report)")


class MetricsConfig(Strict):
    crop_border: int | None = Field(None, ge=0, description="None means crop = scale")
    y_channel: bool = Field(True, description="PSNR/SSIM on BT.601 Y (else RGB)")
    lpips: LpipsConfig = LpipsConfig()
    fid: FidConfig = FidConfig()


# ------------------------------------------------------------- model / loss
class ModelConfig(Strict):
    name: str = Field("edsr", description="network: srcnn, vdsr, espcn, fsrcnn, edsr, lapsrn, dbpn, rcan, swinir, "
                                          "swinir_light")
    args: dict[str, Any] = Field({}, description="constructor arguments of the network")


class LossConfig(Strict):
    """An objective (head + loss terms + decode).

    ``terms`` maps a term name to its weight, or to ``{weight: w, <term options>}``.
    """

    objective: str = Field("regression", description="regression, tlw, fine_grained, cs, fcs")
    args: dict[str, Any] = Field({}, description="constructor arguments of the objective")
    terms: dict[str, Union[float, dict[str, Any]]] = Field({"l1": 1.0}, description="term -> weight or {weight, options}")


# ---------------------------------------------------------------- training
class SchedulerConfig(Strict):
    name: Literal["cosine", "multistep", "constant"] = Field("cosine", description="LR schedule")
    milestones: list[float] = Field([0.5, 0.75], description="fractions of iterations (multistep)")
    gamma: float = Field(0.5, gt=0, le=1, description="LR factor at each milestone")
    warmup: int = Field(0, ge=0, description="linear warm-up iterations")
    min_lr: float = Field(1e-7, ge=0, description="final LR of the cosine schedule")


class BudgetConfig(Strict):
    """How long a run trains: ``train.iterations`` steps (the papers' protocol), or as many steps as
    ``flops`` training FLOPs buy at this objective's and network's FLOPs per step (``pipeline.train.flops``)."""

    by: Literal["iterations", "flops"] = Field("iterations", description="iterations: train.iterations steps; "
                                               "flops: iterations = floor(flops / training FLOPs per step)")
    flops: float | None = Field(None, gt=0, description="training FLOPs of a run when by is flops (e.g. 3.1e15)")

    @model_validator(mode="after")
    def _flops_given(self) -> BudgetConfig:
        if self.by == "flops" and self.flops is None:
            raise ValueError("by: flops needs flops, the training FLOPs of a run (bench/step_flops.py prints "
                             "the FLOPs per step to multiply by iterations)")
        return self


class TrainConfig(Strict):
    """One training run (iteration-based, BasicSR style)."""

    scale: int = Field(2, ge=2, description="upscaling factor")
    degradation: str = Field("bicubic", description="degrade preset whose LR images train the network")
    iterations: int = Field(1000, ge=1, description="optimiser steps (with budget.by: flops, derived instead)")
    budget: BudgetConfig = BudgetConfig()
    batch_size: int = Field(16, ge=1, description="patches per step")
    patch_size: int = Field(96, ge=8, description="HR patch side")
    optimizer: Literal["adam", "adamw"] = Field("adam", description="SR optimiser")
    lr: float = Field(2e-4, gt=0, description="initial learning rate")
    betas: tuple[float, float] = Field((0.9, 0.99), description="Adam betas, each in [0, 1)")
    weight_decay: float = Field(0.0, ge=0, description="(decoupled for adamw)")
    scheduler: SchedulerConfig = SchedulerConfig()
    grad_clip: float | None = Field(None, gt=0, description="max gradient norm; None = off")
    ema: float | None = Field(None, ge=0, lt=1, description="EMA decay of weights (e.g. 0.999); None = off")
    amp: Literal["none", "bf16", "fp16"] = Field("none", description="mixed precision (CUDA only)")
    compile: bool = Field(False, description="torch.compile the network (CUDA only)")
    channels_last: bool = Field(False, description="channels_last memory format")
    device: str = Field("auto", description="auto (CUDA when present), cpu, cuda, cuda:1")
    deterministic: bool = Field(True, description="deterministic algorithms: same seed, same numbers")
    num_workers: int = Field(0, ge=0, description="data-loading worker processes")
    image_store: Literal["mapped", "memory"] = Field(
        "mapped", description="mapped: decode the train/val images once into data_dir/store, which every "
                              "training process on the node maps read-only; memory: decode them into each process")
    val_every: int = Field(250, ge=1, description="validate every N iterations (and at the end)")
    select_metric: str = Field("val/psnr", description="validation metric that picks best.pt")
    select_mode: Literal["max", "min"] = Field("max", description="whether select_metric is better high or low")
    val_benchmarks: list[str] = Field([], description="benchmark names also validated on")
    log_every: int = Field(10, ge=1, description="log training losses every N iterations")
    checkpoint_every: int = Field(250, ge=1, description="write last.pt every N iterations")
    progress: bool = Field(True, description="show a progress bar")
    init_from: str | None = Field(None, description="start from pretrained weights: a checkpoint, a models/<objective> "
                                  "folder, an MLflow model URI, or a .pth/.safetensors state dict (docs/fine-tuning.md); "
                                  "None = random initialisation")
    init_key: str | None = Field(None, description="state dict inside a BasicSR-style init_from file (params or "
                                 "params_ema); None = params_ema when present, else params, else the whole file")
    init_head: bool = Field(True, description="also load the objective's head from init_from when the file has one "
                            "of the same shape; false = every objective's head starts as without init_from")

    @field_validator("betas")
    @classmethod
    def _betas(cls, v: tuple[float, float]) -> tuple[float, float]:
        if not all(math.isfinite(b) and 0 <= b < 1 for b in v):
            raise ValueError("each Adam beta must be a number in [0, 1), e.g. [0.9, 0.99]")
        return v


class TrackingConfig(Strict):
    """MLflow. ``uri`` None means ``$MLFLOW_TRACKING_URI`` or ``sqlite:///<root>/mlflow.db``."""

    enabled: bool = Field(True, description="log runs to MLflow")
    uri: str | None = Field(None, description="tracking URI, e.g. http://host:5000")
    experiment: str = Field("srloss", description="MLflow experiment name")
    artifact_location: Path = Field(Path("mlartifacts"), description="artifact root of a new local experiment")
    log_images: int = Field(3, ge=0, description="comparison crops logged per validation")
    log_model: bool = Field(True, description="log the final model, weights only, as <objective>-seed<seed>")


def decode_row(objective: str, decode: str) -> str:
    """The name of the results row of ``objective``'s models decoded by ``decode`` (``fine_grained.anchor``):
    like every name in the results, valid as an MLflow metric name as it is."""
    return f"{objective}.{decode}"


# ------------------------------------------------------------------- sweep
class RayConfig(Strict):
    """The Ray cluster a sweep joins or starts (see pipeline/tune/cluster.py)."""

    address: str | None = Field(None, description="cluster to join: auto, host:6379, ray://host:10001; "
                                                  "None = $RAY_ADDRESS, else a new local cluster")
    num_cpus: int | None = Field(None, ge=1, description="CPUs of a new local cluster; None = this machine's")
    num_gpus: int | None = Field(None, ge=0, description="GPUs of a new local cluster; None = this machine's")


class ResourcesConfig(Strict):
    """What one trial holds; with workers > 1, each data-parallel worker holds cpu and gpu."""

    cpu: float = Field(1, gt=0, description="CPUs per trial (per worker)")
    gpu: float = Field(0, ge=0, description="GPUs per trial (per worker); fractions share a GPU, e.g. 0.25")
    workers: int = Field(1, ge=1, description="data-parallel workers per trial (DDP: gloo on CPU, NCCL on GPU)")


class SweepSchedulerConfig(Strict):
    """Trial scheduling; time is counted in validation reports."""

    name: Literal["fifo", "asha", "pbt"] = Field("fifo", description="fifo (run all), asha (stop the worst early), "
                                                                     "pbt (population based training)")
    grace_period: int = Field(1, ge=1, description="ASHA: reports before a trial can be stopped")
    reduction_factor: float = Field(2, gt=1, description="ASHA: 1/fraction of trials kept at each rung")
    perturbation_interval: int = Field(2, ge=1, description="PBT: reports between exploit/explore steps")


class SweepConfig(Strict):
    """The sweep stage: the objectives compared in one Ray Tune run (see pipeline/tune/)."""

    objectives: dict[FolderName, dict[str, Any]] = Field({"l1": {"loss": {"terms": {"l1": 1.0}}}},
                                                  description="name -> params fragment merged onto these params")
    only: list[str] | None = Field(None, description="names from sweep.objectives to run; None = all of them")
    space: dict[str, dict[str, dict[str, Any]]] = Field(
        {}, description="objective -> {dotted key: {form: [...]}}, form: choice, grid, uniform, loguniform, randint")
    search: Literal["random", "grid", "optuna"] = Field("random", description="random/grid (Tune), optuna (TPE)")
    scheduler: SweepSchedulerConfig = SweepSchedulerConfig()
    num_samples: int = Field(1, ge=1, description="samples of the space (each grid is tried in every sample)")
    seeds: int = Field(1, ge=1, description="repeats per configuration")
    metric: str = Field("val/psnr", description="validation metric that ranks trials (and picks best.pt)")
    mode: Literal["max", "min"] = Field("max", description="whether metric is better high or low")
    reports: int = Field(4, ge=1, description="validation reports per trial (ASHA rungs)")
    resources: ResourcesConfig = ResourcesConfig()
    max_concurrent: int | None = Field(None, ge=1, description="trials at once; None = as resources allow")
    max_failures: int = Field(1, ge=0, description="retries of a failing trial before it is recorded failed")
    storage_path: str = Field("ray_results", description="trial results, checkpoints and (s3://) the "
                                                         "training data: a path (relative to the project; shared by "
                                                         "all nodes on a cluster) or s3://bucket/prefix")
    storage_endpoint: str | None = Field(None, description="S3-compatible server of an s3:// storage_path (MinIO, "
                                                           "Ceph: http://host:9000); None = $AWS_ENDPOINT_URL, else AWS")
    name: FolderName = Field("sweep", description="folder under storage_path (one plain folder name); "
                                                  "--resume continues it")
    ray: RayConfig = RayConfig()


# ---------------------------------------------------------------- evaluate
class EvaluateConfig(Strict):
    """The evaluate stage: every trained model and bicubic on the benchmarks."""

    scales: list[int] = Field([2], description="scales scored; a model only at the scale it was trained for")
    benchmarks: list[str] | None = Field(None, description="benchmark names; None = every folder in data_dir/benchmarks")
    tile: int = Field(256, ge=16, description="LR tile side for inference (bounds memory)")
    tile_overlap: int = Field(16, ge=0, description="LR pixels of context around each tile")
    crop_size: int = Field(96, ge=16, description="side of the comparison-image crop")
    device: str = Field("auto", description="auto (CUDA when present), cpu, cuda, cuda:N")
    decodes: dict[FolderName, list[FolderName]] = Field({}, description="objective -> other decodes of its models to score "
                                                                      "too, as rows '<objective>.<decode>'")
    self_ensemble: bool = Field(False, description="also score every model with x8 self-ensemble (8 flips/rotations, "
                                                   "averaged after the decode), as rows '<objective>+'; 8x the time")

    @model_validator(mode="after")
    def _tiles_fit(self) -> "EvaluateConfig":
        if self.tile <= 2 * self.tile_overlap:
            raise ValueError(f"evaluate.tile ({self.tile}) must be larger than twice evaluate.tile_overlap "
                             f"({self.tile_overlap}); raise evaluate.tile or lower evaluate.tile_overlap")
        return self


class Params(Strict):
    seed: int = Field(0, ge=0, lt=SEED_LIMIT, description="global seed: data split, degradation, training "
                                                           "(0 to 2**32 - 1)")
    data_dir: Path = Field(Path("data"), description="prepared and degraded images")
    models_dir: Path = Field(Path("models"), description="the sweep's best checkpoints per objective (DVC output)")
    runs_dir: Path = Field(Path("runs"), description="run folders of `python -m pipeline train`")
    results_dir: Path = Field(Path("results"), description="metrics, leaderboard, plots")
    prepare: PrepareConfig = PrepareConfig()
    degrade: DegradeConfig = DegradeConfig()
    metrics: MetricsConfig = MetricsConfig()
    model: ModelConfig = ModelConfig()
    loss: LossConfig = LossConfig()
    train: TrainConfig = TrainConfig()
    tracking: TrackingConfig = TrackingConfig()
    sweep: SweepConfig = SweepConfig()
    evaluate: EvaluateConfig = EvaluateConfig()

    @model_validator(mode="after")
    def _scales_have_images(self) -> "Params":
        """Training and evaluation read LR images only at the scales and presets degrade makes."""
        made = self.degrade.scales
        missing = sorted(set(self.evaluate.scales) - set(made))
        if missing:
            raise ValueError(f"evaluate.scales {missing} has no LR images: degrade.scales makes only {made}; "
                             "add them to degrade.scales or drop them from evaluate.scales")
        if self.train.scale not in made:
            raise ValueError(f"train.scale {self.train.scale} has no LR images: degrade.scales makes only {made}; "
                             "add it to degrade.scales")
        if self.train.degradation not in self.degrade.presets:
            raise ValueError(f"train.degradation '{self.train.degradation}' is not a degrade preset (there are "
                             f"{', '.join(self.degrade.presets)}); add it to degrade.presets")
        return self

    def resolved(self, root: Path) -> "Params":
        """A copy with every relative path made absolute against ``root``: ``train.init_from`` too unless
        it is a URI, and ``sweep.storage_path`` too unless it is a URI or the sweep joins a Ray cluster
        (where ``open_storage`` refuses it: other nodes could not write there)."""
        data = self.model_dump()
        _absolutise(data, root)
        if data["train"]["init_from"]:
            data["train"]["init_from"] = absolute_source(data["train"]["init_from"], root)
        storage = data["sweep"]["storage_path"]
        joins = self.sweep.ray.address or os.environ.get("RAY_ADDRESS")
        if "://" not in storage and not joins:
            data["sweep"]["storage_path"] = str(_absolute(Path(storage), root))
        return Params.model_validate(data)

    def digest(self, *sections: str) -> str:
        """sha256 of the JSON of the given top-level sections (all when none)."""
        dump = self.model_dump(mode="json")
        picked = {k: dump[k] for k in (sections or dump)}
        return hashlib.sha256(json.dumps(picked, sort_keys=True).encode()).hexdigest()


URI_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]+:/")
"""A model source that is a URI (``runs:/``, ``models:/``, ``file:``, ``s3:``, ``http(s):``), not a path."""


def absolute_source(source: str, root: Path) -> str:
    """A model source with a relative path made absolute against ``root``; URIs unchanged."""
    return source if URI_SCHEME.match(source) else str(_absolute(Path(source), root))


def _absolute(path: Path, root: Path) -> Path:
    path = path.expanduser()
    return path if path.is_absolute() else (root / path).resolve()


def _absolutise(node: Any, root: Path) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            if isinstance(value, Path):
                node[key] = _absolute(value, root)
            else:
                _absolutise(value, root)
    elif isinstance(node, list):
        for item in node:
            _absolutise(item, root)
