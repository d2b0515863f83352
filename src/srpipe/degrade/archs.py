"""DSGAN networks (Fritsche et al., "Frequency Separation for Real-World Super-Resolution", 2019).

Pure modules: no I/O, no losses. Keyword-only arguments, recorded in weights file headers.
"""

from __future__ import annotations

import torch
from torch import nn


class ResidualBlock(nn.Module):
    """conv3x3 -> PReLU -> conv3x3, plus the input. No batch norm (as the official generator)."""

    def __init__(self, *, features: int):
        super().__init__()
        self.conv1 = nn.Conv2d(features, features, 3, padding=1)
        self.act = nn.PReLU()
        self.conv2 = nn.Conv2d(features, features, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(self.act(self.conv1(x)))


class DSGANGenerator(nn.Module):
    """LR -> realistic LR of the same size: conv3x3 + PReLU, residual blocks, conv3x3, sigmoid.

    Args:
        features: channels of the body (paper: 64).
        res_blocks: residual blocks (paper: 8).
        noise_channels: standard-normal maps concatenated to the input (paper: 0). A deterministic
            network has to synthesise sensor noise out of the image content itself, which a small
            one trained briefly does not manage (it learns the colour and leaves the LR clean); with
            a noise input it only has to learn how to shape and scale it, per pixel and channel.
        residual: output `x + tail(...)` instead of `sigmoid(tail(...))` (paper: False). The network
            then starts near the identity and only learns the degradation, not the image.
    Shapes:
        x: (B, 3, H, W) in [0, 1] (a bicubic-downscaled clean image) -> (B, 3, H, W) in [0, 1]
        (with `residual`, values may leave [0, 1] slightly; make-pairs clamps).
        noise: (B, noise_channels, H, W), standard normal; drawn from torch's global generator when
        omitted (training); make-pairs passes seeded noise so its output is reproducible.
    Receptive field: 2 * res_blocks + 2 convolutions of 3x3, i.e. a radius of
    `receptive_radius` pixels; tiles with that much context reproduce whole-image output.
    """

    def __init__(self, *, features: int = 64, res_blocks: int = 8, noise_channels: int = 0, residual: bool = False):
        super().__init__()
        if noise_channels < 0:
            raise ValueError(f"noise_channels must be >= 0, got {noise_channels}")
        self.noise_channels = noise_channels
        self.residual = residual
        self.head = nn.Sequential(nn.Conv2d(3 + noise_channels, features, 3, padding=1), nn.PReLU())
        self.body = nn.Sequential(*[ResidualBlock(features=features) for _ in range(res_blocks)])
        self.tail = nn.Conv2d(features, 3, 3, padding=1)
        if residual:  # start at the identity: the first steps then judge the clean LR, not a grey image
            nn.init.zeros_(self.tail.weight)
            nn.init.zeros_(self.tail.bias)
        self.receptive_radius = 2 * res_blocks + 2

    def forward(self, x: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
        inp = x
        if self.noise_channels:
            if noise is None:
                noise = torch.randn(x.shape[0], self.noise_channels, *x.shape[2:], device=x.device, dtype=x.dtype)
            inp = torch.cat([x, noise.to(x.dtype)], 1)
        y = self.tail(self.body(self.head(inp)))
        return x + y if self.residual else torch.sigmoid(y)


class DSGANDiscriminator(nn.Module):
    """Per-pixel patch discriminator for high-pass images; no downsampling.

    conv5x5 3->f + LReLU(0.2), conv5x5 f->2f + BN + LReLU, conv5x5 2f->4f + BN + LReLU, conv1x1 4f->1.

    Args:
        features: width of the first layer (paper: 64).
        spectral_norm: spectral norm on every convolution and no batch norm (Miyato et al. 2018)
            (paper: False).
    Shapes:
        x: (B, 3, H, W), a high-pass image around 0.5 -> (B, 1, H, W) logits (sigmoid = P(real)).
    """

    def __init__(self, *, features: int = 64, spectral_norm: bool = False):
        super().__init__()
        f = features
        sn = nn.utils.parametrizations.spectral_norm if spectral_norm else (lambda m: m)

        def norm(c: int) -> nn.Module:  # batch norm would rescale what spectral norm bounds
            return nn.Identity() if spectral_norm else nn.BatchNorm2d(c)

        self.net = nn.Sequential(
            sn(nn.Conv2d(3, f, 5, padding=2)),
            nn.LeakyReLU(0.2, inplace=True),
            sn(nn.Conv2d(f, 2 * f, 5, padding=2)),
            norm(2 * f),
            nn.LeakyReLU(0.2, inplace=True),
            sn(nn.Conv2d(2 * f, 4 * f, 5, padding=2)),
            norm(4 * f),
            nn.LeakyReLU(0.2, inplace=True),
            sn(nn.Conv2d(4 * f, 1, 1)),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)
