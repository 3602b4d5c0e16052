"""The bicubic baseline: how well plain MATLAB bicubic upscaling does on a set of HR images.

The published recipe (the "Bicubic" rows of SR papers): HR modcropped to the scale,
``LR = imresize(HR, 1/s)``, ``SR = imresize(LR, s)``, both rounded to uint8 as MATLAB's
``im2uint8`` does, then PSNR/SSIM (``pipeline.metrics.reference``) on the BT.601 Y channel
with ``s`` pixels cropped from every side.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from pipeline.degrade.imresize import imresize_uint8
from pipeline.errors import PipelineError
from pipeline.imageio import IMAGE_SUFFIXES, list_images, modcrop, read_image
from pipeline.metrics import reference


def bicubic_baseline(
    hr_dir: Path, scale: int, crop_border: int | None = None, y_channel: bool = True
) -> dict[str, Any]:
    """Mean and per-image PSNR/SSIM of bicubic down-then-up scaling for the images in ``hr_dir``.

    ``crop_border`` None means ``scale``. Returns ``{"psnr", "ssim", "images", "scale",
    "crop_border", "y_channel", "per_image": [{"name", "psnr", "ssim"}, ...]}``; names are paths
    relative to ``hr_dir``, sorted.
    """
    hr_dir = Path(hr_dir)
    if int(scale) != scale or scale < 2:
        raise PipelineError(f"the bicubic baseline needs an integer scale of at least 2 (got {scale}); pass 2, 3 or 4")
    if not hr_dir.is_dir():
        raise PipelineError(f"HR folder '{hr_dir}' does not exist; run the prepare stage or pass an existing folder")
    paths = list_images(hr_dir)
    if not paths:
        raise PipelineError(
            f"HR folder '{hr_dir}' holds no images ({', '.join(IMAGE_SUFFIXES)}); add images or pick another folder"
        )
    crop = scale if crop_border is None else crop_border
    per_image = []
    for path in paths:
        hr = modcrop(read_image(path), scale)
        if min(hr.shape[:2]) < scale:
            raise PipelineError(f"'{path}' is smaller than the scale {scale}; remove it from '{hr_dir}'")
        sr = imresize_uint8(imresize_uint8(hr, 1 / scale), scale)
        try:
            scores = {
                "psnr": reference.psnr(sr, hr, crop, y_channel),
                "ssim": reference.ssim(sr, hr, crop, y_channel),
            }
        except PipelineError as exc:
            raise PipelineError(f"'{path}': {exc}") from None
        per_image.append({"name": path.relative_to(hr_dir).as_posix(), **scores})
    return {
        "psnr": float(np.mean([item["psnr"] for item in per_image])),
        "ssim": float(np.mean([item["ssim"] for item in per_image])),
        "images": len(per_image),
        "scale": int(scale),
        "crop_border": crop,
        "y_channel": y_channel,
        "per_image": per_image,
    }
