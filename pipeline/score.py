"""The ``score`` command: any trained model (checkpoint, ``models/<objective>`` folder or MLflow model)
on a folder of HR images, scored exactly as the evaluate stage scores the study's models.

Pairs: each HR image modcropped to the model's scale, with its LR image either read from ``lr_dir``
(same relative path and stem, any image suffix) or made by MATLAB-exact bicubic downscaling, the
degrade stage's ``bicubic`` preset. Scores: ``pipeline.report.scoring.ImageScorer`` through
``pipeline.report.evaluate.score_pairs`` (PSNR/SSIM in float64 on the Y channel with the scale
cropped, as ``metrics`` in params says; LPIPS and FID when their weights load, else the reason).
Writes ``<out>/image_scores.csv`` (evaluate's per-image format) and ``<out>/summary.json``.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.config import Params
from pipeline.data.paired import ImagePair, check_pair_sizes
from pipeline.degrade.imresize import imresize_uint8
from pipeline.errors import PipelineError
from pipeline.imageio import list_images, modcrop, read_image
from pipeline.inference import upscale_image
from pipeline.report.comparison import Comparison
from pipeline.report.evaluate import SetScores, perceptual_metrics, score_pairs
from pipeline.report.metrics_file import write_text
from pipeline.report.per_image import PerImageScores
from pipeline.report.scoring import ImageScorer
from pipeline.self_ensemble import SUFFIX, SelfEnsemble
from pipeline.train.device import resolve_device
from pipeline.upscale import check_model, load_model

log = logging.getLogger(__name__)


def score_model(params: Params, model: str, hr_dir: Path, out_dir: Path, scale: int | None = None,
                lr_dir: Path | None = None, tile: int = 256, overlap: int = 16, device: str = "auto",
                self_ensemble: bool = False, tracking_uri: str | None = None) -> dict[str, Any]:
    """Score ``model`` on ``hr_dir`` (see the module); returns the summary written to ``summary.json``."""
    hr_dir = Path(hr_dir)
    resolver = load_model(model, resolve_device(device), tracking_uri)
    check_model(resolver, model, scale, None)
    if self_ensemble:
        resolver = SelfEnsemble(resolver)
    pairs = read_pairs(hr_dir, resolver.scale, None if lr_dir is None else Path(lr_dir))
    lpips, fid, unavailable = perceptual_metrics(params, next(resolver.parameters()).device)
    scorer = ImageScorer.for_scale(params.metrics, resolver.scale, lpips, next(resolver.parameters()).device, fid)
    method = resolver.objective_name + (SUFFIX if self_ensemble else "")
    per_image, set_level = PerImageScores(), PerImageScores()
    sets = SetScores(scorer, pairs, set_level, Comparison(hr_dir.name, resolver.scale, pairs[0].name, pairs[0].hr))
    scores, _ = score_pairs(pairs, scorer, lambda lr: upscale_image(resolver, lr, tile=tile, overlap=overlap), sets)
    for pair, image_scores in zip(pairs, scores, strict=True):
        per_image.add(hr_dir.name, resolver.scale, method, None, pair.name, image_scores)
    summary = {
        "model": str(model), "description": resolver.description, "scale": resolver.scale,
        "hr_dir": str(hr_dir), "lr": str(lr_dir) if lr_dir is not None else "MATLAB bicubic of the HR images",
        "images": len(pairs), "crop_border": scorer.crop_border, "y_channel": scorer.y_channel,
        "mean": {metric: float(np.mean([image[metric] for image in scores])) for metric in scores[0]},
        **({"fid": sets.take(method, None)["fid"]} if fid is not None else {}),
        "unavailable": unavailable,
    }
    out_dir = Path(out_dir)
    per_image.write_csv(out_dir / "image_scores.csv")
    write_text(out_dir / "summary.json", json.dumps(summary, indent=2) + "\n")
    log.info("scored %s on %d images of %s: PSNR %.4f dB, SSIM %.4f; wrote %s", resolver.description, len(pairs),
             hr_dir, summary["mean"]["psnr"], summary["mean"]["ssim"], out_dir)
    return summary


def read_pairs(hr_dir: Path, scale: int, lr_dir: Path | None) -> list[ImagePair]:
    """Each HR image of ``hr_dir`` modcropped to ``scale``, with its LR image from ``lr_dir`` or bicubic."""
    if not hr_dir.is_dir():
        raise PipelineError(f"HR folder '{hr_dir}' does not exist; pass a folder of HR images with --hr-dir")
    if lr_dir is not None and not lr_dir.is_dir():
        raise PipelineError(f"LR folder '{lr_dir}' does not exist; pass the folder of the LR images, or drop "
                            "--lr-dir to make them by bicubic downscaling")
    paths = list_images(hr_dir)
    if not paths:
        raise PipelineError(f"HR folder '{hr_dir}' holds no images; pass a folder of PNG/JPEG images")
    lr_paths = {path.relative_to(lr_dir).with_suffix("").as_posix(): path for path in list_images(lr_dir)} \
        if lr_dir is not None else {}
    pairs = []
    for path in paths:
        hr = np.ascontiguousarray(modcrop(read_image(path), scale))
        name = path.relative_to(hr_dir).with_suffix("").as_posix()
        if lr_dir is None:
            lr = imresize_uint8(hr, 1 / scale)
        elif name not in lr_paths:
            raise PipelineError(f"LR folder '{lr_dir}' has no image for '{path}' (looked for {name}.*); give every "
                                "HR image its LR image under the same name")
        else:
            lr = read_image(lr_paths[name])
            check_pair_sizes(path, lr_paths[name], hr.shape[:2], lr.shape[:2], scale)
        pairs.append(ImagePair(name=name, lr=lr, hr=hr))
    return pairs
