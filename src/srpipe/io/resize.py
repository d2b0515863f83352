"""Antialiased bicubic resizing on tensors.

`F.interpolate(mode="bicubic", antialias=True)` implements the same separable kernel as MATLAB's
`imresize` (Keys cubic, a = -0.5, widened by the scale factor when downscaling), so it matches
MATLAB away from the borders; at the borders MATLAB mirrors and torch renormalises the clipped
kernel. It runs batched on any device, unlike the Python loops of the DSGAN reference code.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def bicubic_down(x: torch.Tensor, scale: int) -> torch.Tensor:
    """Downscale (B, C, H, W) or (C, H, W) by an integer factor; H and W must divide by `scale`.

    Output values are clamped to [0, 1] (bicubic overshoots at edges).
    """
    squeeze = x.dim() == 3
    if squeeze:
        x = x.unsqueeze(0)
    h, w = x.shape[-2:]
    if h % scale or w % scale:
        raise ValueError(f"image size {w}x{h} is not a multiple of scale {scale}; mod-crop it first")
    y = F.interpolate(x, size=(h // scale, w // scale), mode="bicubic", antialias=True, align_corners=False)
    y = y.clamp(0, 1)
    return y[0] if squeeze else y


def bicubic_up(x: torch.Tensor, scale: int) -> torch.Tensor:
    """Upscale (B, C, H, W) by an integer factor with plain bicubic (the baseline SR), clamped to [0, 1]."""
    return F.interpolate(x, scale_factor=scale, mode="bicubic", align_corners=False).clamp(0, 1)


def mod_crop(x: torch.Tensor, scale: int) -> torch.Tensor:
    """Crop the bottom/right so that H and W are multiples of `scale`."""
    h, w = x.shape[-2:]
    return x[..., : h - h % scale, : w - w % scale]
