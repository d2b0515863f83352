"""DSGAN losses (Fritsche et al. 2019, eq. 1-3), on tensors in [0, 1].

- colour: L1 between low-passes of G(x) and x; the official code uses `AvgPool2d(5, stride=1)`
  without padding, i.e. `filters.low_pass(padding="none")`.
- adversarial ("texture"): the discriminator sees only high-passes `0.5 + 0.5 * (x - low(x))`
  with the low-pass averaging only real pixels at borders (official `count_include_pad=False`).
  We use BCE on logits, the same loss as the official sigmoid + `-log(D + 1e-8)` without its epsilon.
- perceptual: LPIPS between G(x) and x (official: AlexNet, inputs in [0, 1] with normalize=True).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from srpipe.io.filters import high_pass, low_pass

LPIPS_NETS = {"alexnet": "alex", "vgg16": "vgg"}  # the `lpips` package's names of the backbones


def color_loss(fake: torch.Tensor, x: torch.Tensor, *, kernel: int, kind: str) -> torch.Tensor:
    return F.l1_loss(low_pass(fake, kernel, kind=kind, padding="none"), low_pass(x, kernel, kind=kind, padding="none"))


def d_input(x: torch.Tensor, *, kernel: int, kind: str, gain: float = 1.0) -> torch.Tensor:
    """What the discriminator sees: the high-pass image `0.5 + 0.5 * gain * (x - low(x))`."""
    hp = high_pass(x, kernel, kind=kind, padding="exclude")
    return hp if gain == 1 else 0.5 + gain * (hp - 0.5)


def bce_real(logits: torch.Tensor) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(logits, torch.ones_like(logits))


def bce_fake(logits: torch.Tensor) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(logits, torch.zeros_like(logits))


class Perceptual(torch.nn.Module):
    """LPIPS distance (batch mean) between two [0, 1] images on `backbone` (`alexnet` or `vgg16`, the
    `srpipe.engine.weights` names of `srpipe.degrade.contract.LPIPS_BACKBONES`)."""

    def __init__(self, backbone: str, weights_dir=None):
        super().__init__()
        from srpipe.engine.weights import lpips_model

        self.net = lpips_model(LPIPS_NETS[backbone], weights_dir)

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return self.net(a, b, normalize=True).mean()
