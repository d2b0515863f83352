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

`plan_tiles` lists the tiles (grouped by shape, so that a batch stacks), a `Stitcher` puts their
outputs together, and `tiled_apply` moves batches between them.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass

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


BATCH_BUDGET = 6 << 30  # bytes of tile activations per forward pass for `auto_batch`: a 4K -> 16K x4 upscale
# then fits in 8 GB of device memory with weights, staging buffers and the allocator's slack
MAX_AUTO_BATCH = 8  # more tiles per pass gain nothing measurable once a GPU is saturated


def auto_batch(device: torch.device | str, side: int, channels: int = 64) -> int:
    """Tiles per forward pass: 1 on the CPU; on CUDA as many as fit BATCH_BUDGET and half the free memory.

    Estimate per tile: about four `channels`-wide activation maps of `side` x `side` output pixels
    alive at once, in 2-byte precision (the largest maps of RRDBNet's upsampler and DSGAN's body).
    """
    device = torch.device(device)
    if device.type != "cuda":
        return 1
    per_tile = 4 * channels * side * side * 2
    free, _ = torch.cuda.mem_get_info(device)
    return max(1, min(MAX_AUTO_BATCH, int(min(BATCH_BUDGET, free // 2) // per_tile)))


Box = tuple[int, int, int, int]  # (y0, x0, y1, x1) in input pixels


@dataclass(frozen=True)
class Tile:
    """One tile: the input box the network sees, and the box of it whose output is kept."""

    src: Box
    keep: Box  # inside `src`; the core in exact mode, `src` itself in feathered mode


def plan_tiles(h: int, w: int, *, tile: int, pad: int, blend: bool) -> list[list[Tile]]:
    """The tiles of an (h, w) image, grouped by input shape (a batch holds tiles of one shape)."""
    tiles = []
    if not blend:
        for y0 in range(0, h, tile):
            for x0 in range(0, w, tile):
                y1, x1 = min(y0 + tile, h), min(x0 + tile, w)
                src = (max(0, y0 - pad), max(0, x0 - pad), min(h, y1 + pad), min(w, x1 + pad))
                tiles.append(Tile(src, (y0, x0, y1, x1)))
    else:
        size = tile + 2 * pad
        for y0 in _starts(h, size, tile):
            for x0 in _starts(w, size, tile):
                box = (y0, x0, min(y0 + size, h), min(x0 + size, w))
                tiles.append(Tile(box, box))
    groups: dict[tuple[int, int], list[Tile]] = defaultdict(list)
    for t in tiles:
        groups[(t.src[2] - t.src[0], t.src[3] - t.src[1])].append(t)
    return list(groups.values())


class Stitcher:
    """Puts tile outputs together into the (C, h*scale, w*scale) result.

    Exact mode copies each tile's kept core into place. Feathered mode adds the tiles, already
    multiplied by their `weights` (linear ramps over the overlaps), and divides by the summed
    weights at the end.
    """

    def __init__(self, h: int, w: int, *, scale: int, pad: int, blend: bool):
        self.h, self.w, self.s, self.pad, self.blend = h, w, scale, pad, blend
        self.out: torch.Tensor | None = None  # allocated at the first tile (its channel count)
        self.weight: torch.Tensor | None = None

    def weights(self, chunk: list[Tile]) -> torch.Tensor:
        """(B, 1, h*s, w*s) feathering weights of the tiles of `chunk` (their output sizes)."""
        s, out = self.s, []
        for t in chunk:
            iy0, ix0, iy1, ix1 = t.src
            ph, pw = (iy1 - iy0) * s, (ix1 - ix0) * s
            ov = min(2 * self.pad * s, ph, pw)
            ramp_y = _ramp(ph, ov, iy0 > 0, iy1 < self.h)
            out.append((ramp_y[:, None] * _ramp(pw, ov, ix0 > 0, ix1 < self.w)[None, :])[None])
        return torch.stack(out)

    def add(self, chunk: list[Tile], y: torch.Tensor, wts: torch.Tensor | None) -> None:
        """The outputs `y` (B, C, ., .) of `chunk` on the host; feathered: already weighted by `wts`."""
        s = self.s
        if self.out is None:
            self.out = torch.zeros(y.shape[1], self.h * s, self.w * s)
            if self.blend:
                self.weight = torch.zeros(1, self.h * s, self.w * s)
        for k, (t, yt) in enumerate(zip(chunk, y)):
            (iy0, ix0, _, _), (ky0, kx0, ky1, kx1) = t.src, t.keep
            part = yt[:, (ky0 - iy0) * s : (ky1 - iy0) * s, (kx0 - ix0) * s : (kx1 - ix0) * s]
            where = (slice(None), slice(ky0 * s, ky1 * s), slice(kx0 * s, kx1 * s))
            if not self.blend:
                self.out[where] = part
            else:
                self.out[where] += part
                self.weight[where] += wts[k]

    def result(self) -> torch.Tensor:
        if self.blend:
            self.out /= self.weight
        return self.out


@dataclass
class _InFlight:
    """A batch whose output is on its way to the host (CUDA: `event` marks the copy's end)."""

    chunk: list[Tile]
    x: torch.Tensor | None  # the input, kept for the fallback
    y_host: torch.Tensor
    wts: torch.Tensor | None
    event: object | None


def _checked(fn, x: torch.Tensor, s: int) -> torch.Tensor:
    """`fn(x)` as float32, refusing an output of the wrong shape."""
    y = fn(x)
    want = (x.shape[0], x.shape[2] * s, x.shape[3] * s)
    if y.dim() != 4 or (y.shape[0], y.shape[2], y.shape[3]) != want:
        # Without this check a wrong `scale` shows up as an obscure slicing error later.
        raise ValueError(
            f"fn returned shape {tuple(y.shape)} for tiles {tuple(x.shape)}; expected "
            f"(B, C, h*{s}, w*{s}) = ({want[0]}, C, {want[1]}, {want[2]}): is scale={s} right?"
        )
    return y.float()


def _batches(plan: list[list[Tile]], batch: int) -> Iterator[list[Tile]]:
    for members in plan:
        for i in range(0, len(members), batch):
            yield members[i : i + batch]


def _to_device(img: torch.Tensor, chunk: list[Tile], device: torch.device, dtype, channels_last: bool) -> torch.Tensor:
    tiles = [img[:, a:c, b:d] for (a, b, c, d) in (t.src for t in chunk)]
    if device.type == "cuda":  # pinned staging: the host-to-device copy does not block the host
        x = torch.empty((len(tiles), *tiles[0].shape), dtype=img.dtype, pin_memory=True)
        torch.stack(tiles, out=x)
    else:
        x = torch.stack(tiles)
    x = x.to(device, non_blocking=True)
    if dtype is not None:
        x = x.to(dtype)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    return x


def _to_host(y: torch.Tensor) -> tuple[torch.Tensor, object | None]:
    """(host copy of `y`, the CUDA event that marks the end of the copy, or None on the CPU)."""
    if y.device.type != "cuda":
        return y.cpu(), None
    y = y.contiguous()  # NCHW on the device, then one plain copy into pinned memory
    y_host = torch.empty(y.shape, dtype=y.dtype, pin_memory=True)
    y_host.copy_(y, non_blocking=True)
    event = torch.cuda.Event()
    event.record()
    return y_host, event


def _land(b: _InFlight, stitcher: Stitcher, fallback, s: int) -> None:
    """Wait for the copy of batch `b`, rerun it with `fallback` if not finite, and stitch it."""
    if b.event is not None:
        b.event.synchronize()  # this batch's copy is done; the GPU is already on the next one
    y_host = b.y_host
    if fallback is not None and not bool(torch.isfinite(y_host).all()):
        y_host = _checked(fallback, b.x, s)
        if b.wts is not None:
            y_host = y_host * b.wts.to(y_host.device)
        y_host = y_host.cpu()
    stitcher.add(b.chunk, y_host, None if b.wts is None else b.wts.cpu())


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
    channels_last: bool = False,
    fallback: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> torch.Tensor:
    """Run ``fn`` over tiles of ``img`` and stitch the results.

    On CUDA the host never waits for a batch it has just queued (a sync per batch would idle the GPU). Batch k's result is copied
    to pinned memory asynchronously and stitched on the host while the GPU computes batch k+1. The
    feathering weights are applied on the device, so the host only adds.

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
        channels_last: hand ``fn`` NHWC (channels-last) tiles.
        fallback: called instead of ``fn`` for a batch whose output is not finite (e.g. an fp32
            rerun after fp16 overflow); checked on the host, after the copy it waits for anyway.
    Returns:
        (C_out, H*scale, W*scale) float32 tensor on the CPU.
    """
    if img.dim() != 3:
        raise ValueError(f"tiled_apply expects a (C, H, W) tensor, got shape {tuple(img.shape)}")
    if tile < 1 or pad < 0 or batch < 1 or scale < 1:
        raise ValueError(f"tile ({tile}), batch ({batch}) and scale ({scale}) must be >= 1 and pad ({pad}) >= 0")
    device = torch.device(device)
    _, h, w = img.shape
    stitcher = Stitcher(h, w, scale=scale, pad=pad, blend=blend)
    pending = None
    for chunk in _batches(plan_tiles(h, w, tile=tile, pad=pad, blend=blend), batch):
        x = _to_device(img, chunk, device, dtype, channels_last)
        y = _checked(fn, x, scale)
        wts = stitcher.weights(chunk).to(device, non_blocking=True) if blend else None
        if wts is not None:
            y = y * wts
        y_host, event = _to_host(y)
        if pending is not None:
            _land(pending, stitcher, fallback, scale)
        pending = _InFlight(chunk, x if fallback is not None else None, y_host, wts, event)
    if pending is not None:
        _land(pending, stitcher, fallback, scale)
    return stitcher.result()
