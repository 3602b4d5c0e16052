"""MATLAB-exact bicubic ``imresize`` in torch (float64, any device, any leading batch dims).

Reproduces MATLAB R2017b ``imresize(im2double(img), s, 'bicubic')`` bit for bit: Keys'
cubic kernel with a = -0.5 (Keys 1981, "Cubic convolution interpolation for digital image
processing"), widened by 1/s on downscale (antialiasing), output size ceil(s * in),
symmetric (mirrored) border indices, the dimension with the smaller scale resized first
(rows first on ties), and each output value summed tap by tap in MATLAB's order.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch

from pipeline.errors import PipelineError

CUBIC_SUPPORT = 4.0


def cubic(x: np.ndarray) -> np.ndarray:
    """Keys' cubic kernel, a = -0.5: 1.5|x|^3 - 2.5|x|^2 + 1 on |x| <= 1,
    -0.5|x|^3 + 2.5|x|^2 - 4|x| + 2 on 1 < |x| <= 2, else 0."""
    absx = np.abs(x)
    absx2 = absx * absx
    absx3 = absx2 * absx
    inner = (1.5 * absx3 - 2.5 * absx2 + 1) * (absx <= 1)
    outer = (-0.5 * absx3 + 2.5 * absx2 - 4 * absx + 2) * ((absx > 1) & (absx <= 2))
    return inner + outer


def contributions(in_length: int, out_length: int, scale: float, antialias: bool) -> tuple[np.ndarray, np.ndarray]:
    """Weights and 0-based mirrored input indices, each ``out_length x taps``.

    Output pixel x (1-based) samples the input at u = x/s + (1 - 1/s)/2; on downscale with
    antialiasing the kernel becomes s * cubic(s * t) over a support of 4/s.
    """
    widen = antialias and scale < 1
    width = CUBIC_SUPPORT / scale if widen else CUBIC_SUPPORT
    x = np.arange(1, out_length + 1, dtype=np.float64)
    u = x / scale + 0.5 * (1 - 1 / scale)
    left = np.floor(u - width / 2)
    taps = int(math.ceil(width)) + 2
    indices = left[:, None] + np.arange(taps, dtype=np.float64)[None, :]
    distance = u[:, None] - indices
    weights = scale * cubic(scale * distance) if widen else cubic(distance)
    total = weights[:, 0].copy()
    for k in range(1, taps):
        total = total + weights[:, k]
    weights = weights / total[:, None]
    mirror = np.concatenate([np.arange(in_length), np.arange(in_length - 1, -1, -1)])
    indices = mirror[np.mod(indices.astype(np.int64) - 1, 2 * in_length)]
    used = np.any(weights != 0, axis=0)
    return weights[:, used], indices[:, used]


@functools.lru_cache(maxsize=64)
def _device_contributions(
    in_length: int, out_length: int, scale: float, antialias: bool, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """``contributions`` as float64/long tensors on ``device``, memoised per argument tuple."""
    weights, indices = contributions(in_length, out_length, scale, antialias)
    return (
        torch.from_numpy(weights).to(device=device, dtype=torch.float64),
        torch.from_numpy(indices).to(device=device, dtype=torch.long),
    )


def _resize_dim(image: torch.Tensor, dim: int, out_length: int, scale: float, antialias: bool) -> torch.Tensor:
    """Resize along ``dim`` (-2 rows, -1 columns): out[i] = sum_k w[i, k] * in[idx[i, k]], k in order."""
    weights, indices = _device_contributions(image.shape[dim], out_length, scale, antialias, image.device)
    shape = (-1, 1) if dim == -2 else (-1,)
    result = image.index_select(dim, indices[:, 0]).mul_(weights[:, 0].reshape(shape))
    tap = torch.empty_like(result)
    for k in range(1, weights.shape[1]):
        torch.index_select(image, dim, indices[:, k], out=tap)
        result.add_(tap.mul_(weights[:, k].reshape(shape)))
    return result


def imresize(
    image: torch.Tensor,
    scale: float | None = None,
    size: tuple[int, int] | None = None,
    antialias: bool = True,
) -> torch.Tensor:
    """MATLAB ``imresize(image, scale | [h w], 'bicubic')`` of a ``[..., C, H, W]`` tensor.

    Computes and returns float64 on the input's device; values are not clipped.
    With ``scale`` the output is ceil(scale * in) per side; with ``size`` the per-side
    scales are out/in.
    """
    if (scale is None) == (size is None):
        raise PipelineError("imresize needs exactly one of scale or size; pass e.g. scale=0.25 or size=(h, w)")
    if image.dim() < 2:
        raise PipelineError(
            f"imresize expects a [..., H, W] tensor, got shape {tuple(image.shape)}; add the missing dims"
        )
    in_h, in_w = image.shape[-2:]
    if scale is not None:
        if scale <= 0:
            raise PipelineError(f"imresize scale must be positive, got {scale}; pass e.g. scale=0.5")
        scales = (float(scale), float(scale))
        out_h, out_w = math.ceil(scale * in_h), math.ceil(scale * in_w)
    else:
        out_h, out_w = size
        if out_h < 1 or out_w < 1:
            raise PipelineError(f"imresize size must be positive, got {size}; pass e.g. size=(120, 125)")
        scales = (out_h / in_h, out_w / in_w)
    result = image.to(torch.float64)
    passes = [(-2, out_h, scales[0]), (-1, out_w, scales[1])]
    if scales[1] < scales[0]:
        passes.reverse()
    for dim, out_length, dim_scale in passes:
        result = _resize_dim(result, dim, out_length, dim_scale, antialias)
    return result


def to_uint8(image: np.ndarray) -> np.ndarray:
    """MATLAB ``im2uint8`` of a float image on 0..1: round(255 x) half away from zero, clipped."""
    scaled = np.clip(image * 255.0, 0.0, 255.0)
    return np.floor(scaled + 0.5).astype(np.uint8)


def imresize_uint8(array: np.ndarray, scale: float) -> np.ndarray:
    """``im2uint8(imresize(im2double(array), scale, 'bicubic'))`` for an ``H x W x 3`` uint8 array."""
    if array.dtype != np.uint8 or array.ndim != 3:
        raise PipelineError(
            f"imresize_uint8 expects an H x W x C uint8 array, got {array.dtype} {array.shape}; use read_image"
        )
    chw = torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1))).to(torch.float64) / 255.0
    resized = imresize(chw, scale=scale).numpy().transpose(1, 2, 0)
    return to_uint8(resized)
