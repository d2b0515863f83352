"""Low-pass and high-pass filters used by frequency separation (DSGAN, ESRGAN-FS).

A low-pass is a stride-1 box (or Gaussian) average over a k x k window. Padding choices, as the
reference code uses them:

- ``"none"``: no padding, output shrinks by k-1 (DSGAN's colour loss, `AvgPool2d(5, stride=1)`).
- ``"replicate"``: edge pixels repeated, output keeps its size.
- ``"exclude"``: zero padding, but each output is the average of the pixels that exist
  (`count_include_pad=False`; DSGAN's FilterHigh for the discriminator).
- ``"zeros"``: zero padding counted in the average (`count_include_pad=True`; ESRGAN-FS's FilterLow).

The high-pass is DSGAN's form ``0.5 + 0.5 * (x - low(x))``: it stays in [0, 1] for inputs in [0, 1].
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F

Padding = Literal["none", "replicate", "exclude", "zeros"]
Kind = Literal["box", "gaussian"]


def gaussian_kernel1d(k: int, sigma: float, *, dtype=torch.float32, device=None) -> torch.Tensor:
    """Normalised 1-D Gaussian of odd length k."""
    r = torch.arange(k, dtype=torch.float64, device=device) - (k - 1) / 2
    g = torch.exp(-(r**2) / (2 * sigma**2))
    return (g / g.sum()).to(dtype)


def low_pass(
    x: torch.Tensor,
    k: int,
    *,
    kind: Kind = "box",
    padding: Padding = "replicate",
    sigma: float | None = None,
) -> torch.Tensor:
    """Stride-1 k x k low-pass of (B, C, H, W).

    Args:
        k: window size, odd.
        kind: ``box`` (mean) or ``gaussian`` (sigma defaults to k/6, DSGAN's choice).
        padding: see the module docstring.
    Returns:
        (B, C, H, W), or (B, C, H-k+1, W-k+1) for ``padding="none"``.
    """
    if k < 1 or k % 2 == 0:
        raise ValueError(f"low-pass kernel size must be odd and >= 1, got {k}")
    # A misspelt padding would otherwise fall through to one of the branches below silently.
    if padding not in ("none", "replicate", "exclude", "zeros"):
        raise ValueError(f"unknown low-pass padding {padding!r}: use none, replicate, exclude or zeros")
    if kind not in ("box", "gaussian"):
        raise ValueError(f"unknown low-pass kind {kind!r}: use box or gaussian")
    if kind == "box":
        if padding == "none":
            return F.avg_pool2d(x, k, stride=1)
        if padding == "replicate":
            return F.avg_pool2d(F.pad(x, [k // 2] * 4, mode="replicate"), k, stride=1)
        return F.avg_pool2d(x, k, stride=1, padding=k // 2, count_include_pad=(padding == "zeros"))
    c = x.shape[1]
    g = gaussian_kernel1d(k, sigma if sigma is not None else k / 6, dtype=x.dtype, device=x.device)
    w2 = (g[:, None] * g[None, :]).expand(c, 1, k, k)
    if padding == "none":
        return F.conv2d(x, w2, groups=c)
    if padding == "replicate":
        return F.conv2d(F.pad(x, [k // 2] * 4, mode="replicate"), w2, groups=c)
    y = F.conv2d(x, w2, padding=k // 2, groups=c)
    if padding == "exclude":  # divide by the kernel mass that fell on real pixels
        ones = torch.ones_like(x[:1, :1])
        y = y / F.conv2d(ones, w2[:1], padding=k // 2)
    return y


def high_pass(x: torch.Tensor, k: int, *, kind: Kind = "box", padding: Padding = "exclude") -> torch.Tensor:
    """``0.5 + 0.5 * (x - low_pass(x))``, same size as x (padding must keep the size)."""
    if padding == "none":
        raise ValueError("high_pass needs a size-keeping padding (replicate, exclude or zeros)")
    return 0.5 + 0.5 * (x - low_pass(x, k, kind=kind, padding=padding))
