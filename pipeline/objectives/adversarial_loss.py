"""Adversarial loss with its own discriminator (SRGAN, Ledig et al. 2017; ESRGAN, Wang et al. 2018;
Real-ESRGAN, Wang et al. 2021)."""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn
from torch.nn import functional as F
from torch.nn.utils.parametrizations import spectral_norm

from pipeline.errors import PipelineError
from pipeline.objectives.base import LossTerm
from pipeline.objectives.registry import register_term

GanType = Literal["vanilla", "lsgan", "hinge", "relativistic"]
GAN_TYPES = ("vanilla", "lsgan", "hinge", "relativistic")


class VGGStyleDiscriminator(nn.Module):
    """SRGAN/ESRGAN discriminator: stages of (3x3 conv, 4x4 stride-2 conv), BatchNorm and LeakyReLU
    0.2, widths ``c, 2c, 4c, 8c``, then a 4x4 adaptive average pool and a 100-unit MLP: one logit per
    image. Four stride-2 stages as in SRGAN (ESRGAN's 128-pixel version has five) keep at least 2x2
    positions for BatchNorm at the last stage from 32-pixel patches on; the pool replaces the fixed
    input size, so any patch of >= 32 pixels works.
    """

    min_side = 32

    def __init__(self, channels: int = 64):
        super().__init__()
        widths = [channels, 2 * channels, 4 * channels, 8 * channels]
        layers: list[nn.Module] = []
        in_channels = 3
        for stage, width in enumerate(widths):
            layers.append(nn.Conv2d(in_channels, width, 3, padding=1, bias=stage == 0))
            if stage > 0:
                layers.append(nn.BatchNorm2d(width))
            layers += [nn.LeakyReLU(0.2), nn.Conv2d(width, width, 4, stride=2, padding=1, bias=False),
                       nn.BatchNorm2d(width), nn.LeakyReLU(0.2)]
            in_channels = width
        self.features = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(4))
        self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(widths[-1] * 16, 100), nn.LeakyReLU(0.2), nn.Linear(100, 1))

    def forward(self, image: Tensor) -> Tensor:
        return self.classifier(self.features(image))


class UNetDiscriminatorSN(nn.Module):
    """Real-ESRGAN discriminator: a U-Net (three stride-2 4x4 convs down, three bilinear-upsample +
    3x3 conv stages up with skip additions, two 3x3 convs) with spectral normalisation (Miyato et al.
    2018) on every conv but the first and last; one logit per pixel, ``[B, 1, H, W]``.
    """

    min_side = 8

    def __init__(self, channels: int = 64):
        super().__init__()
        c = channels
        self.first = nn.Conv2d(3, c, 3, padding=1)
        self.down = nn.ModuleList(spectral_norm(nn.Conv2d(a, b, 4, stride=2, padding=1, bias=False))
                                  for a, b in ((c, 2 * c), (2 * c, 4 * c), (4 * c, 8 * c)))
        self.up = nn.ModuleList(spectral_norm(nn.Conv2d(a, b, 3, padding=1, bias=False))
                                for a, b in ((8 * c, 4 * c), (4 * c, 2 * c), (2 * c, c)))
        self.refine = nn.Sequential(spectral_norm(nn.Conv2d(c, c, 3, padding=1, bias=False)), nn.LeakyReLU(0.2),
                                    spectral_norm(nn.Conv2d(c, c, 3, padding=1, bias=False)), nn.LeakyReLU(0.2))
        self.last = nn.Conv2d(c, 1, 3, padding=1)

    def forward(self, image: Tensor) -> Tensor:
        x = F.leaky_relu(self.first(image), 0.2)
        skips = [x]
        for conv in self.down:
            x = F.leaky_relu(conv(x), 0.2)
            skips.append(x)
        skips.pop()
        for conv in self.up:
            skip = skips.pop()
            x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            x = F.leaky_relu(conv(x), 0.2) + skip
        return self.last(self.refine(x))


DISCRIMINATORS: dict[str, type[nn.Module]] = {"vgg": VGGStyleDiscriminator, "unet": UNetDiscriminatorSN}


def discriminator_loss(gan_type: GanType, real: Tensor, fake: Tensor) -> Tensor:
    """The discriminator's loss on its logits for HR (``real``) and SR (``fake``) images.

    vanilla: ``BCE(real, 1) + BCE(fake, 0)`` (Goodfellow et al. 2014); lsgan: ``mean (real - 1)^2 +
    mean fake^2`` (Mao et al. 2017); hinge: ``mean relu(1 - real) + mean relu(1 + fake)`` (Lim & Ye
    2017); relativistic (RaGAN, Jolicoeur-Martineau 2019, as in ESRGAN):
    ``(BCE(real - mean fake, 1) + BCE(fake - mean real, 0)) / 2``.
    """
    bce = F.binary_cross_entropy_with_logits
    if gan_type == "vanilla":
        return bce(real, torch.ones_like(real)) + bce(fake, torch.zeros_like(fake))
    if gan_type == "lsgan":
        return (real - 1).square().mean() + fake.square().mean()
    if gan_type == "hinge":
        return F.relu(1 - real).mean() + F.relu(1 + fake).mean()
    return (bce(real - fake.mean(), torch.ones_like(real)) + bce(fake - real.mean(), torch.zeros_like(fake))) / 2


def generator_loss(gan_type: GanType, fake: Tensor, real: Tensor | None = None) -> Tensor:
    """The generator's loss on the discriminator's logits for SR (``fake``); ``real`` (HR logits,
    no gradient) only for relativistic.

    vanilla: ``BCE(fake, 1)``; lsgan: ``mean (fake - 1)^2``; hinge: ``-mean fake``;
    relativistic: ``(BCE(real - mean fake, 0) + BCE(fake - mean real, 1)) / 2``.
    """
    bce = F.binary_cross_entropy_with_logits
    if gan_type == "vanilla":
        return bce(fake, torch.ones_like(fake))
    if gan_type == "lsgan":
        return (fake - 1).square().mean()
    if gan_type == "hinge":
        return -fake.mean()
    if real is None:
        raise ValueError("the relativistic generator loss needs the logits of the real images")
    return (bce(real - fake.mean(), torch.zeros_like(real)) + bce(fake - real.mean(), torch.ones_like(fake))) / 2


@register_term("gan")
class AdversarialLoss(LossTerm):
    """The generator's adversarial loss ``generator_loss(D(SR))``; ``aux_step`` trains ``D`` with Adam.

    ``discriminator``: ``vgg`` (SRGAN/ESRGAN) or ``unet`` (Real-ESRGAN, spectral norm); ``channels``
    its base width. ESRGAN is ``{discriminator: vgg, gan_type: relativistic}``, Real-ESRGAN
    ``{discriminator: unet, gan_type: vanilla}``; both use Adam ``lr=1e-4, betas=(0.9, 0.99)``.

    Warm-up: for iterations ``< warmup`` the term is exactly 0 and ``aux_step`` leaves D untouched,
    so the SR network trains on the other terms (a pixel loss) alone. ``forward`` gets no iteration:
    it uses the last one given to ``aux_step``, which the trainer calls before the loss every
    iteration (``last_iteration`` starts at 0). D's parameters have ``requires_grad`` off except
    inside ``aux_step``, so the generator's backward pass never touches them.

    Options:
        discriminator: ``vgg``: SRGAN/ESRGAN VGG-style, one logit per image; ``unet``: Real-ESRGAN U-Net
            with spectral norm, one logit per pixel.
        gan_type: the pair of discriminator and generator losses (docs/losses.md).
        channels: base width of ``D``.
        lr, betas: ``D``'s Adam (ESRGAN's and Real-ESRGAN's values).
        warmup: iterations before the term starts.
    """

    def __init__(self, discriminator: Literal["vgg", "unet"] = "vgg", gan_type: GanType = "vanilla",
                 channels: int = 64, lr: float = 1e-4, betas: tuple[float, float] = (0.9, 0.99), warmup: int = 0):
        super().__init__()
        if discriminator not in DISCRIMINATORS:
            raise ValueError(f"discriminator must be one of {', '.join(DISCRIMINATORS)} (got {discriminator!r})")
        if gan_type not in GAN_TYPES:
            raise ValueError(f"gan_type must be one of {', '.join(GAN_TYPES)} (got {gan_type!r})")
        if channels < 1 or lr <= 0 or warmup < 0 or len(betas) != 2 or not all(0 <= b < 1 for b in betas):
            raise ValueError("channels >= 1, lr > 0, warmup >= 0 and two betas in [0, 1) are required")
        self.gan_type = gan_type
        self.warmup = int(warmup)
        self.last_iteration = 0
        self.discriminator = DISCRIMINATORS[discriminator](channels).requires_grad_(False)
        self.aux_optimizers = {
            "discriminator": torch.optim.Adam(self.discriminator.parameters(), lr=lr, betas=(float(betas[0]), float(betas[1])))
        }

    def _check_size(self, image: Tensor) -> None:
        side = self.discriminator.min_side
        if min(image.shape[-2:]) < side:
            raise PipelineError(
                f"the gan loss's discriminator needs patches of at least {side} pixels a side, got "
                f"{tuple(image.shape[-2:])}; raise train.patch_size or use discriminator: unet"
            )

    def warming_up(self) -> bool:
        return self.last_iteration < self.warmup

    def forward(self, sr: Tensor, hr: Tensor) -> Tensor:
        if self.warming_up():
            return sr.new_zeros(())
        self._check_size(sr)
        real = None
        if self.gan_type == "relativistic":
            with torch.no_grad():
                real = self.discriminator(hr)
        return generator_loss(self.gan_type, self.discriminator(sr), real)

    def aux_step(self, sr: Tensor, hr: Tensor, iteration: int) -> dict[str, float]:
        """One discriminator update on HR (real) and the detached SR (fake); logs D's loss and mean logits."""
        self.last_iteration = iteration
        if self.warming_up():
            return {}
        self._check_size(sr)
        optimizer = self.aux_optimizers["discriminator"]
        self.discriminator.requires_grad_(True)
        try:
            with torch.enable_grad():
                real = self.discriminator(hr)
                fake = self.discriminator(sr.detach())
                loss = discriminator_loss(self.gan_type, real, fake)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
        finally:
            self.discriminator.requires_grad_(False)
        return {"d_loss": loss.item(), "d_real": real.detach().mean().item(), "d_fake": fake.detach().mean().item()}
