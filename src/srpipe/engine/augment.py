"""Random crops, flips and 90-degree rotations for a whole batch in one gather on the device.

Both training stages draw their patches here. The random numbers of a batch come first, all at once,
from a CPU `torch.Generator` whose state goes into checkpoints (`draw`). They are small and do not
depend on the device, so a resumed run, a CPU run and a GPU run see the same patches. The pixels are
then fetched in one step by `ImageBank.crops`:

- Flips and rotations permute pixel positions. So each of the 8 (flip, quarter-turn) combinations is
  a fixed (size, size) table of source coordinates, made once by applying `flip` and `rot90` to a
  grid of coordinates. Per sample: corner + table[combination] gives the source pixel of every
  output pixel, and one index operation gathers the whole batch. There is no per-sample Python loop,
  no `torch.where` chain, and the result equals the per-sample reference (`reference_crops`) exactly.
- The images are packed into one uint8 buffer of RGB pixels, kept on the device when it fits.
  Otherwise it stays in pinned host memory (gather on the host, asynchronous copy) or, for data larger
  than RAM, memory-mapped (one window read per sample, the flip/rotation gather on the device).
  uint8 is 4x smaller than float and 4x less to copy. The float conversion happens on the device.
- The gather reads (n, h, w, 3) pixels, so the batch comes out channels-last for free; `.contiguous()`
  turns it into NCHW where that is wanted (on the CPU).

FSSR's training code spends 0.5-2.6 s per step loading data; BasicSR crops and flips per sample in
DataLoader workers. Here a batch of sixteen 128-px crops costs a few kernel launches.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from typing import Literal, Sequence

import numpy as np
import torch

Placement = Literal["auto", "device", "pinned", "mapped", "host"]  # host: CPU memory, for a CPU device
DEVICE_SHARE = 0.25  # "auto" keeps the images on the GPU when they take at most this share of its memory
HOST_SHARE = 0.5  # ... and in (pinned) host memory when they take at most this share of free RAM


@dataclass
class Draws:
    """The random numbers of one batch (CPU int64/bool tensors of length n)."""

    index: torch.Tensor  # which image
    y: torch.Tensor  # top row of the crop, in the image's pixels
    x: torch.Tensor  # left column of the crop
    flip: torch.Tensor  # mirror left-right, applied first
    rot: torch.Tensor  # quarter turns of torch.rot90(dims=(-2, -1)), applied after the flip

    def __len__(self) -> int:
        return len(self.index)

    def slice(self, start: int, stop: int) -> "Draws":
        """Rows start:stop (a rank's share of a global batch under DDP)."""
        return Draws(*(t[start:stop] for t in (self.index, self.y, self.x, self.flip, self.rot)))


def draw(
    gen: torch.Generator,
    sizes: torch.Tensor,
    n: int,
    size: int,
    *,
    multiple: int = 1,
    flips: bool = False,
    rotations: bool = False,
) -> Draws:
    """Draw `n` crops of `size` x `size` from images of `sizes` ((N, 2) int64 heights and widths).

    Corners land on multiples of `multiple` (keeps a bicubic or LR grid aligned). The draw order is
    fixed (image indices, corners, flips, rotations), so a generator state reproduces a batch.
    """
    index = torch.randint(len(sizes), (n,), generator=gen)
    slots = (sizes[index] - size) // multiple + 1  # (n, 2) possible corners per axis
    if bool((slots < 1).any()):
        raise ValueError(f"an image is smaller than the {size}-px crop")
    u = torch.rand(n, 2, generator=gen, dtype=torch.float64)
    corner = torch.minimum((u * slots).long(), slots - 1) * multiple
    flip = torch.randint(2, (n,), generator=gen).bool() if flips else torch.zeros(n, dtype=torch.bool)
    rot = torch.randint(4, (n,), generator=gen) if rotations else torch.zeros(n, dtype=torch.long)
    return Draws(index, corner[:, 0].contiguous(), corner[:, 1].contiguous(), flip, rot)


def reference_crops(
    images: Sequence[np.ndarray | torch.Tensor], d: Draws, size: int, *, corner_scale: int = 1
) -> torch.Tensor:
    """The definition `ImageBank.crops` must equal: a per-sample loop over (H, W, 3) uint8 images.

    Crop at (y, x) * corner_scale, flip, then rotate; returns (n, 3, size, size) uint8.
    """
    out = torch.empty(len(d), 3, size, size, dtype=torch.uint8)
    for i in range(len(d)):
        y, x = int(d.y[i]) * corner_scale, int(d.x[i]) * corner_scale
        window = images[int(d.index[i])][y : y + size, x : x + size]
        crop = (torch.from_numpy(np.array(window)) if isinstance(window, np.ndarray) else window).permute(2, 0, 1)
        if d.flip[i]:
            crop = crop.flip(-1)
        out[i] = torch.rot90(crop, int(d.rot[i]), (-2, -1))
    return out


def _coordinate_tables(size: int) -> torch.Tensor:
    """(8, 2, size, size) int64: source (row, col) of each output pixel for flip * 4 + quarter turns."""
    rows = torch.arange(size).view(size, 1).expand(size, size)
    cols = torch.arange(size).view(1, size).expand(size, size)
    grid = torch.stack([rows, cols])  # (2, size, size)
    tables = []
    for flip in (False, True):
        g = grid.flip(-1) if flip else grid
        for k in range(4):
            tables.append(torch.rot90(g, k, (-2, -1)))
    return torch.stack(tables).contiguous()


def _free_host_bytes() -> int:
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def choose_placement(nbytes: int, device: torch.device, placement: Placement = "auto") -> str:
    """Where `nbytes` of images live: ``device``, ``pinned`` (CUDA), ``host`` (CPU device) or ``mapped``."""
    local = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))  # every DDP rank on this machine holds a copy
    fits_host = nbytes * local <= HOST_SHARE * _free_host_bytes()
    if device.type != "cuda":
        if placement == "mapped" or (placement == "auto" and not fits_host):
            return "mapped"
        return "host"
    if placement == "auto":
        total = torch.cuda.get_device_properties(device).total_memory
        if nbytes <= DEVICE_SHARE * total:
            return "device"
        return "pinned" if fits_host else "mapped"
    return "pinned" if placement == "host" else placement


class ImageBank:
    """RGB uint8 images of any sizes, ready for batched crops on `device`.

    Args:
        images: (H, W, 3) uint8 arrays or tensors (numpy memory maps are fine; they are read once,
            or, with placement ``mapped``, read window by window at each batch).
        device: where the crops are used.
        placement: ``auto`` (device if it fits, else pinned host memory, else mapped), or forced.
    """

    def __init__(
        self,
        images: Sequence[np.ndarray | torch.Tensor],
        *,
        device: torch.device | str = "cpu",
        placement: Placement = "auto",
    ):
        self.device = torch.device(device)
        if not images:
            raise ValueError("ImageBank needs at least one image")
        for im in images:
            if im.ndim != 3 or im.shape[2] != 3 or im.dtype not in (np.uint8, torch.uint8):
                raise ValueError(f"ImageBank takes (H, W, 3) uint8 images, got {tuple(im.shape)} {im.dtype}")
        self.sizes = torch.tensor([[im.shape[0], im.shape[1]] for im in images], dtype=torch.long)
        pixels = self.sizes.prod(1)
        self.nbytes = int(pixels.sum()) * 3
        self.placement = choose_placement(self.nbytes, self.device, placement)
        self._tables: dict[int, torch.Tensor] = {}
        if self.placement == "mapped":
            self._images = list(images)
            return
        offsets = torch.zeros(len(images), dtype=torch.long)
        offsets[1:] = pixels.cumsum(0)[:-1]
        where = self.device if self.placement == "device" else torch.device("cpu")
        pin = self.placement == "pinned"
        self._pixels = torch.empty(int(pixels.sum()), 3, dtype=torch.uint8, device=where, pin_memory=pin)
        for im, off, n in zip(images, offsets.tolist(), pixels.tolist()):
            if isinstance(im, np.ndarray):
                with warnings.catch_warnings():  # a read-only memmap of the decode cache: only read, copied below
                    warnings.simplefilter("ignore", UserWarning)
                    src = torch.from_numpy(np.ascontiguousarray(im))
            else:
                src = im.contiguous()
            self._pixels[off : off + n].copy_(src.reshape(n, 3))
        self._offsets = offsets.to(where)
        self._widths = self.sizes[:, 1].to(where)

    def _table(self, size: int, device: torch.device) -> torch.Tensor:
        if size not in self._tables:
            self._tables[size] = _coordinate_tables(size).to(device)
        return self._tables[size]

    def crops(self, d: Draws, size: int, *, corner_scale: int = 1, channels_last: bool = False) -> torch.Tensor:
        """(n, 3, size, size) uint8 on the device: crop at (y, x) * corner_scale, flip, rotate.

        Equal to `reference_crops` for the same draws. `channels_last` returns the gathered NHWC
        memory as is; otherwise the result is made NCHW-contiguous.
        """
        if self.placement == "mapped":
            out = self._crops_mapped(d, size, corner_scale)
        else:
            gather_on = self._pixels.device
            # one (n, 2) transfer of the few draw numbers; non_blocking: no wait for the GPU
            combo = (d.flip.long() * 4 + d.rot).to(gather_on, non_blocking=True)
            corner = (torch.stack([d.y, d.x], 1) * corner_scale).to(gather_on, non_blocking=True)  # (n, 2)
            index = d.index.to(gather_on, non_blocking=True)
            # source pixel = offset + (y + row) * width + (x + col), rows/cols from the coordinate tables
            width = self._widths[index].view(-1, 1, 1)
            base = self._offsets[index] + corner[:, 0] * self._widths[index] + corner[:, 1]
            table = self._table(size, gather_on)[combo]  # (n, 2, s, s)
            flat = (table[:, 0] * width).add_(table[:, 1]).add_(base.view(-1, 1, 1)).view(-1)
            if self.placement == "pinned":
                buf = torch.empty(flat.numel(), 3, dtype=torch.uint8, pin_memory=True)
                torch.index_select(self._pixels, 0, flat, out=buf)
                nhwc = buf.view(len(d), size, size, 3).to(self.device, non_blocking=True)
            else:
                nhwc = torch.index_select(self._pixels, 0, flat).view(len(d), size, size, 3)  # the one gather
            out = nhwc.permute(0, 3, 1, 2)
        return out if channels_last else out.contiguous()

    def _crops_mapped(self, d: Draws, size: int, corner_scale: int) -> torch.Tensor:
        """Data larger than RAM: read each window (the loop is I/O), then flip/rotate the batch in one gather."""
        pin = self.device.type == "cuda"
        win = torch.empty(len(d), size, size, 3, dtype=torch.uint8, pin_memory=pin)
        for i, (k, y, x) in enumerate(
            zip(d.index.tolist(), (d.y * corner_scale).tolist(), (d.x * corner_scale).tolist())
        ):
            win[i] = torch.from_numpy(np.ascontiguousarray(self._images[k][y : y + size, x : x + size]))
        win = win.to(self.device, non_blocking=True)
        combo = (d.flip.long() * 4 + d.rot).to(self.device, non_blocking=True)
        coords = self._table(size, self.device)[combo]  # (n, 2, s, s)
        rows = torch.arange(len(d), device=self.device).view(-1, 1, 1)
        return win[rows, coords[:, 0], coords[:, 1]].permute(0, 3, 1, 2)


def to_float(batch: torch.Tensor) -> torch.Tensor:
    """uint8 -> float32 in [0, 1], keeping the memory format (channels-last stays channels-last)."""
    return batch.float().div_(255)


def split(n: int, fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """(train, held-out) indices of `n` items, both stages' validation split: round(n * fraction)
    held out, at least one when fraction > 0, and at least one left for training."""
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).tolist()
    n_val = 0 if fraction <= 0 or n < 2 else min(max(1, round(n * fraction)), n - 1)
    return sorted(perm[n_val:]), sorted(perm[:n_val])
