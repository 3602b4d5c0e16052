"""x8 self-ensemble: the manual average of the 8 flipped/rotated predictions, tiled or not."""

import numpy as np
import torch

from pipeline.inference import load_super_resolver, upscale_image
from pipeline.self_ensemble import SYMMETRIES, SelfEnsemble, inverse, transform


def test_the_eight_symmetries_are_distinct_and_each_inverse_undoes_its_transform():
    image = torch.arange(2 * 3 * 4, dtype=torch.float32).view(1, 2, 3, 4)
    seen = {tuple(transform(image, *s).flatten().tolist()) + tuple(transform(image, *s).shape) for s in SYMMETRIES}
    assert len(SYMMETRIES) == len(seen) == 8
    assert all(torch.equal(inverse(transform(image, *s), *s), image) for s in SYMMETRIES)


def test_self_ensemble_equals_the_manual_average_of_the_eight_predictions(tiny_checkpoint):
    resolver = load_super_resolver(tiny_checkpoint)
    lr = torch.rand(1, 3, 7, 10, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        manual = []
        for flip in (False, True):
            for k in range(4):
                flipped = torch.flip(lr, dims=[3]) if flip else lr
                out = resolver(torch.rot90(flipped, k, dims=[2, 3]))
                back = torch.rot90(out, -k, dims=[2, 3])
                manual.append(torch.flip(back, dims=[3]) if flip else back)
        expected = torch.stack(manual).mean(dim=0)
        ensembled = SelfEnsemble(resolver)(lr)
    assert ensembled.shape == (1, 3, 14, 20)
    assert torch.allclose(ensembled, expected, rtol=0, atol=1e-6)
    assert not torch.allclose(ensembled, resolver(lr), atol=1e-3)  # the ensemble changes the image
    assert SelfEnsemble(resolver).description.endswith("with x8 self-ensemble")


def test_tiled_self_ensemble_equals_the_whole_image_one(tiny_checkpoint):
    """The tiny EDSR's receptive-field radius is 5 LR pixels (five 3x3 convs) plus one HR pixel (the head),
    within the overlap of 8: tiles reproduce whole-image inference for every symmetry."""
    ensemble = SelfEnsemble(load_super_resolver(tiny_checkpoint))
    image = np.random.default_rng(0).integers(0, 256, size=(37, 29, 3), dtype=np.uint8)
    whole = upscale_image(ensemble, image, tile=64, overlap=8)
    tiled = upscale_image(ensemble, image, tile=20, overlap=8)
    assert np.array_equal(whole, tiled)
