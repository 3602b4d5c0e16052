"""x8 geometric self-ensemble (Timofte et al., "Seven ways to improve example-based single image super
resolution", CVPR 2016; the "+" rows of EDSR, Lim et al. 2017).

``SR+(x) = 1/8 sum_T T^-1(SR(T(x)))`` over the 8 symmetries ``T`` of the square (4 rotations by 90
degrees, each with and without a horizontal flip); ``SR`` is the whole trained model, decode and clamp
included, so the average is taken over images. Tiled inference (``pipeline.inference.upscale_image``)
of the ensemble equals the ensemble of tiled inference: each symmetry maps tiles to tiles.
"""

from __future__ import annotations

from torch import Tensor

from pipeline.inference import SuperResolver

SUFFIX = "+"
"""Appended to a method's name in the reports: ``l1+`` is the ``l1`` model with self-ensemble."""

NOTE = ("Rows ending in + are the same models with x8 self-ensemble: the mean of the SR images of the 8 "
        "flips/rotations of each input, each mapped back (evaluate.self_ensemble).")

SYMMETRIES = tuple((rotations, flip) for flip in (False, True) for rotations in range(4))


def transform(image: Tensor, rotations: int, flip: bool) -> Tensor:
    """Flip ``[..., H, W]`` left-right (when ``flip``), then rotate it by ``rotations`` x 90 degrees."""
    return (image.flip(-1) if flip else image).rot90(rotations, dims=(-2, -1))


def inverse(image: Tensor, rotations: int, flip: bool) -> Tensor:
    """Undo ``transform``."""
    image = image.rot90(-rotations, dims=(-2, -1))
    return image.flip(-1) if flip else image


class SelfEnsemble(SuperResolver):
    """The model of ``resolver``, answering with the mean over the 8 symmetries of its inputs."""

    def __init__(self, resolver: SuperResolver):
        super().__init__(resolver.net, resolver.objective, resolver.model_name, resolver.objective_name)

    @property
    def description(self) -> str:
        return f"{super().description}, with x8 self-ensemble"

    def forward(self, lr: Tensor) -> Tensor:
        total = sum(inverse(super(SelfEnsemble, self).forward(transform(lr, *symmetry)), *symmetry)
                    for symmetry in SYMMETRIES)
        return total / len(SYMMETRIES)
