"""RGB -> Y (luma) of ITU-R BT.601 studio swing, as MATLAB's ``rgb2ycbcr`` computes it.

On 0..255 values: ``Y = 16 + (65.481 R + 128.553 G + 24.966 B) / 255``, giving 16..235.
The result is not rounded: SR papers report PSNR/SSIM on this unrounded Y.
"""

from __future__ import annotations

import numpy as np
from torch import Tensor

Y_OFFSET = 16.0
Y_WEIGHTS = (65.481, 128.553, 24.966)


def rgb_to_y_numpy(image: np.ndarray) -> np.ndarray:
    """``H x W x 3`` RGB on 0..255 -> ``H x W`` float64 Y on 16..235."""
    rgb = np.asarray(image, dtype=np.float64)
    return Y_OFFSET + rgb @ np.asarray(Y_WEIGHTS, dtype=np.float64) / 255.0


def rgb_to_y_tensor(image: Tensor) -> Tensor:
    """``[..., 3, H, W]`` RGB on 0..255 -> ``[..., 1, H, W]`` Y on 16..235, in the input's dtype."""
    red, green, blue = image.unbind(dim=-3)
    luma = Y_OFFSET + (Y_WEIGHTS[0] * red + Y_WEIGHTS[1] * green + Y_WEIGHTS[2] * blue) / 255.0
    return luma.unsqueeze(-3)
