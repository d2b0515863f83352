"""Tiled application of an image-to-image network on images of any size.

The whole image stays in host memory; only a batch of tiles is on the device at a time (Real-ESRGAN
moves the whole image to the GPU first, RE #184).

Two ways to hide tile borders:

- **exact** (``blend=False``): each tile is a core region grown by ``pad`` pixels of real context on
  every side (clipped at the image border, so the network sees the image border exactly where the
  whole-image pass would). Only the core of each output is kept. With ``pad`` >= the network's
  receptive-field radius the result equals the whole-image result (to float rounding).
- **feathered** (``blend=True``): neighbouring tiles overlap by ``2 * pad`` pixels and are averaged
  with linear ramps over the overlap, which hides seams when ``pad`` is smaller than the receptive
  field (cheaper, approximate).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable

import torch


def _starts(n: int, size: int, step: int) -> list[int]:
    """Window starts covering [0, n) with windows of `size` moved by `step`, the last flush with n."""
    if n <= size:
        return [0]
    s = list(range(0, n - size, step))
    s.append(n - size)
    return s


def _ramp(n: int, overlap: int, lo: bool, hi: bool) -> torch.Tensor:
    """1-D weights: 1 inside, linear ramps over `overlap` samples on sides that meet another tile."""
    w = torch.ones(n)
    if overlap > 0:
        r = (torch.arange(overlap, dtype=torch.float32) + 0.5) / overlap
        if lo:
            w[:overlap] = torch.minimum(w[:overlap], r)
        if hi:
            w[-overlap:] = torch.minimum(w[-overlap:], r.flip(0))
    return w


@torch.no_grad()
def tiled_apply(
    img: torch.Tensor,
    fn: Callable[[torch.Tensor], torch.Tensor],
    *,
    scale: int = 1,
    tile: int = 256,
    pad: int = 16,
    batch: int = 1,
    device: torch.device | str = "cpu",
    blend: bool = False,
    dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """Run ``fn`` over tiles of ``img`` and stitch the results.

    Args:
        img: (C, H, W) float tensor in host memory.
        fn: maps (B, C, h, w) on ``device`` to (B, C_out, h*scale, w*scale).
        scale: output/input size ratio of ``fn``.
        tile: core tile size in input pixels (the tile the network sees is up to ``tile + 2*pad``).
        pad: context pixels per side (exact mode) or half-overlap (feathered mode).
        batch: tiles of equal shape per call of ``fn``.
        device: where ``fn`` runs.
        blend: feathered blending instead of exact cropping.
        dtype: dtype of the tiles handed to ``fn`` (e.g. torch.bfloat16); results are stored as float32.
    Returns:
        (C_out, H*scale, W*scale) float32 tensor on the CPU.
    """
    if img.dim() != 3:
        raise ValueError(f"tiled_apply expects a (C, H, W) tensor, got shape {tuple(img.shape)}")
    if tile < 1 or pad < 0 or batch < 1 or scale < 1:
        raise ValueError(f"tile ({tile}), batch ({batch}) and scale ({scale}) must be >= 1 and pad ({pad}) >= 0")
    _, h, w = img.shape
    jobs: list[tuple[tuple[int, int, int, int], tuple[int, int, int, int]]] = []  # (input box, keep box)
    if not blend:
        for y0 in range(0, h, tile):
            for x0 in range(0, w, tile):
                y1, x1 = min(y0 + tile, h), min(x0 + tile, w)
                iy0, ix0, iy1, ix1 = max(0, y0 - pad), max(0, x0 - pad), min(h, y1 + pad), min(w, x1 + pad)
                jobs.append(((iy0, ix0, iy1, ix1), (y0, x0, y1, x1)))
    else:
        size = tile + 2 * pad
        for y0 in _starts(h, size, tile):
            for x0 in _starts(w, size, tile):
                box = (y0, x0, min(y0 + size, h), min(x0 + size, w))
                jobs.append((box, box))

    groups: dict[tuple[int, int], list] = defaultdict(list)
    for job in jobs:
        (iy0, ix0, iy1, ix1), _ = job
        groups[(iy1 - iy0, ix1 - ix0)].append(job)

    out = weight = None
    s = scale
    for members in groups.values():
        for i in range(0, len(members), batch):
            chunk = members[i : i + batch]
            x = torch.stack([img[:, a:c, b:d] for (a, b, c, d), _ in chunk]).to(device, non_blocking=True)
            if dtype is not None:
                x = x.to(dtype)
            y = fn(x)
            want = (x.shape[0], x.shape[2] * s, x.shape[3] * s)
            if y.dim() != 4 or (y.shape[0], y.shape[2], y.shape[3]) != want:
                # Without this check a wrong `scale` shows up as an obscure slicing error below.
                raise ValueError(
                    f"fn returned shape {tuple(y.shape)} for tiles {tuple(x.shape)}; expected "
                    f"(B, C, h*{s}, w*{s}) = ({want[0]}, C, {want[1]}, {want[2]}): is scale={s} right?"
                )
            y = y.float().cpu()
            if out is None:
                out = torch.zeros(y.shape[1], h * s, w * s)
                if blend:
                    weight = torch.zeros(1, h * s, w * s)
            for (ibox, kbox), yt in zip(chunk, y):
                iy0, ix0, iy1, ix1 = ibox
                ky0, kx0, ky1, kx1 = kbox
                part = yt[:, (ky0 - iy0) * s : (ky1 - iy0) * s, (kx0 - ix0) * s : (kx1 - ix0) * s]
                if not blend:
                    out[:, ky0 * s : ky1 * s, kx0 * s : kx1 * s] = part
                else:
                    ov = min(2 * pad * s, part.shape[1], part.shape[2])
                    wy = _ramp(part.shape[1], ov, ky0 > 0, ky1 < h)
                    wx = _ramp(part.shape[2], ov, kx0 > 0, kx1 < w)
                    wt = wy[:, None] * wx[None, :]
                    out[:, ky0 * s : ky1 * s, kx0 * s : kx1 * s] += part * wt
                    weight[:, ky0 * s : ky1 * s, kx0 * s : kx1 * s] += wt
    if blend:
        out /= weight
    return out
