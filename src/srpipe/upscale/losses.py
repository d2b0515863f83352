"""ESRGAN losses: L1 pixel, VGG19 perceptual, relativistic-average GAN, frequency separation.

- Pixel: L1 (ESRGAN and BasicSR).
- Perceptual (ESRGAN Sec. 3.3): L1 between VGG19 conv5_4 features taken *before* the ReLU, on
  ImageNet-normalised inputs (BasicSR `PerceptualLoss` with `{'conv5_4': 1}`, `use_input_norm`).
- RaGAN (ESRGAN Sec. 3.2): D_Ra(a, b) = sigmoid(C(a) - E_b[C(b)]), with E the mean over the batch and,
  for a patch discriminator, over positions as well. Written with BCE-with-logits as BasicSR's
  `ESRGANModel` does.
- Frequency separation (ESRGAN-FS, Fritsche et al. 2019): the pixel loss sees low-passes only and the
  discriminator sees only high-passes `0.5 + 0.5 (x - LP(x))`; box k=9 with zero padding counted in
  the mean (ESRGAN-FS `FilterLow`, `count_include_pad=True`), Gaussian sigma (k-1)/6 as there.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from srpipe.io import filters

# torchvision's ImageNet statistics (the VGG19 weights were trained on inputs normalised by them).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def pixel_loss(sr: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
    """Mean absolute error over all elements."""
    return F.l1_loss(sr, hr)


class PerceptualLoss(nn.Module):
    """L1 between VGG19 conv5_4 (pre-activation) features of ImageNet-normalised images.

    Args:
        features: the frozen VGG19 `features[:35]` from `srpipe.engine.weights.vgg19_features()`.
    Shapes:
        sr, hr: (B, 3, H, W) in [0, 1] -> scalar. Gradients flow to `sr` only.
    """

    def __init__(self, features: nn.Module):
        super().__init__()
        self.features = features.eval()
        for p in self.features.parameters():
            p.requires_grad_(False)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def train(self, mode: bool = True):  # the backbone stays in eval mode whatever the caller does
        super().train(mode)
        self.features.eval()
        return self

    def forward(self, sr: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
        f_sr = self.features((sr - self.mean) / self.std)
        with torch.no_grad():
            f_hr = self.features((hr - self.mean) / self.std)
        return F.l1_loss(f_sr, f_hr)


def ragan_g_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor, *, mean=torch.mean) -> torch.Tensor:
    """Generator side of RaGAN: ½ [BCE(C(r) - E[C(f)], 0) + BCE(C(f) - E[C(r)], 1)].

    `real_logits` should be detached (D is not trained by this loss); the means run over all
    elements, i.e. the batch and any patch positions (`mean`: `distributed.global_mean` under DDP,
    so E runs over the global batch).
    """
    real_rel = real_logits - mean(fake_logits)
    fake_rel = fake_logits - mean(real_logits)
    return 0.5 * (
        F.binary_cross_entropy_with_logits(real_rel, torch.zeros_like(real_rel))
        + F.binary_cross_entropy_with_logits(fake_rel, torch.ones_like(fake_rel))
    )


def ragan_d_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor, *, mean=torch.mean) -> torch.Tensor:
    """Discriminator side of RaGAN: ½ [BCE(C(r) - E[C(f)], 1) + BCE(C(f) - E[C(r)], 0)].

    `fake_logits` must come from a detached generator output; `mean` as in `ragan_g_loss`.
    """
    real_rel = real_logits - mean(fake_logits)
    fake_rel = fake_logits - mean(real_logits)
    return 0.5 * (
        F.binary_cross_entropy_with_logits(real_rel, torch.ones_like(real_rel))
        + F.binary_cross_entropy_with_logits(fake_rel, torch.zeros_like(fake_rel))
    )


class FrequencySeparation:
    """ESRGAN-FS filters: `low(x)` for the pixel loss, `high(x)` for the discriminator input.

    Args:
        kind: ``box`` (ESRGAN-FS default) or ``gaussian`` (sigma = (k-1)/6, ESRGAN-FS's choice).
        kernel: odd window size (ESRGAN-FS: 9).
    """

    def __init__(self, kind: Literal["box", "gaussian"] = "box", kernel: int = 9):
        self.kind = kind
        self.kernel = kernel
        self.sigma = (kernel - 1) / 6 if kind == "gaussian" else None

    def low(self, x: torch.Tensor) -> torch.Tensor:
        return filters.low_pass(x, self.kernel, kind=self.kind, padding="zeros", sigma=self.sigma)

    def high(self, x: torch.Tensor) -> torch.Tensor:
        # filters.high_pass's Gaussian uses DSGAN's sigma k/6; ESRGAN-FS uses (k-1)/6, hence low() here.
        return 0.5 + 0.5 * (x - self.low(x))
