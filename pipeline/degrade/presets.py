"""One degradation preset applied to one HR image: blur -> modcrop + bicubic /s -> noise -> JPEG.

The classical SR degradation y = JPEG_q((x * k) downarrow_s + n) (e.g. Zhang et al. 2018, SRMD;
Wang et al. 2021, Real-ESRGAN, for the noise and JPEG terms), with MATLAB-exact bicubic for the
downscale. Intermediate values stay float64 until the single rounding to uint8 before JPEG.
"""

from __future__ import annotations

import hashlib

import albumentations as A
import cv2
import numpy as np
import torch

from pipeline.config_data import BlurConfig, DegradationPreset, JpegConfig, NoiseConfig
from pipeline.degrade.imresize import imresize, to_uint8
from pipeline.errors import PipelineError
from pipeline.imageio import modcrop


def image_generator(seed: int, key: str) -> np.random.Generator:
    """A generator seeded from sha256(f"{seed}/{key}"), stable across runs, machines and processes."""
    digest = hashlib.sha256(f"{seed}/{key}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:16], "little"))


def gaussian_kernel(blur: BlurConfig) -> np.ndarray:
    """k(p) proportional to exp(-p^T S^-1 p / 2) on a ``kernel_size`` square grid, summing to 1.

    S = R diag(sigma^2, sigma_y^2) R^T with R the rotation by ``angle`` degrees from the x (column)
    axis; ``sigma_y`` None gives the isotropic kernel.
    """
    sigma_y = blur.sigma if blur.sigma_y is None else blur.sigma_y
    theta = np.deg2rad(blur.angle)
    rotation = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    precision = np.linalg.inv(rotation @ np.diag([blur.sigma**2, sigma_y**2]) @ rotation.T)
    radius = blur.kernel_size // 2
    grid = np.arange(-radius, radius + 1, dtype=np.float64)
    columns, rows = np.meshgrid(grid, grid)
    points = np.stack([columns, rows], axis=-1)
    kernel = np.exp(-0.5 * np.einsum("...i,ij,...j->...", points, precision, points))
    return kernel / kernel.sum()


def blur_image(image: np.ndarray, blur: BlurConfig) -> np.ndarray:
    """``image`` (H x W x C float64) filtered with ``gaussian_kernel``, symmetric border padding."""
    return cv2.filter2D(image, cv2.CV_64F, gaussian_kernel(blur), borderType=cv2.BORDER_REFLECT)


def noise_image(image: np.ndarray, noise: NoiseConfig, rng: np.random.Generator) -> np.ndarray:
    """Add independent per-pixel, per-channel noise to a float image on 0..1.

    Gaussian: n ~ N(0, (sigma/255)^2). Poisson (shot noise, Real-ESRGAN convention):
    n = scale * (P(v) - v) / 255 with v = 255 * clip(image, 0, 1) and P(v) ~ Poisson(v).
    """
    if noise.kind == "gaussian":
        return image + rng.normal(0.0, noise.sigma / 255.0, size=image.shape)
    photons = 255.0 * np.clip(image, 0.0, 1.0)
    return image + noise.scale * (rng.poisson(photons) - photons) / 255.0


def jpeg_image(image: np.ndarray, jpeg: JpegConfig) -> np.ndarray:
    """Encode and decode an RGB uint8 image as baseline JPEG at ``quality`` (libjpeg via OpenCV).

    OpenCV's encoder reads channels as BGR, so the image is flipped around the call to get the
    standard RGB -> YCbCr luma/chroma split.
    """
    compress = A.ImageCompression(compression_type="jpeg", quality_range=(jpeg.quality, jpeg.quality), p=1.0)
    bgr = np.ascontiguousarray(image[..., ::-1])
    return np.ascontiguousarray(compress(image=bgr)["image"][..., ::-1])


def degrade(hr: np.ndarray, preset: DegradationPreset, scale: int, rng: np.random.Generator) -> np.ndarray:
    """The LR image (H/s x W/s x 3 uint8) of an HR uint8 image under ``preset``.

    With every step None this equals ``imresize_uint8(modcrop(hr, scale), 1/scale)`` exactly.
    """
    if hr.dtype != np.uint8 or hr.ndim != 3:
        raise PipelineError(f"degrade expects an H x W x C uint8 image, got {hr.dtype} {hr.shape}; use read_image")
    if min(hr.shape[:2]) < scale:
        raise PipelineError(
            f"an image of {hr.shape[1]}x{hr.shape[0]} is smaller than scale {scale}; remove it or lower degrade.scales"
        )
    image = hr.astype(np.float64) / 255.0
    if preset.blur is not None:
        image = blur_image(image, preset.blur)
    image = modcrop(image, scale)
    chw = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))
    image = imresize(chw, scale=1.0 / scale).numpy().transpose(1, 2, 0)
    if preset.noise is not None:
        image = noise_image(image, preset.noise, rng)
    lr = to_uint8(image)
    if preset.jpeg is not None:
        lr = jpeg_image(lr, preset.jpeg)
    return lr
