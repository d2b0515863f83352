"""Unpaired data of the degradation learners (DSGAN, pdm): HR crops for the generator, real-LR
crops for the discriminator.

Images are decoded once into uint8 tensors in memory (these folders are small: a few hundred
photos); crops, flips and rotations are drawn from one `torch.Generator` whose state goes into
checkpoints, so a resumed run continues the same random stream (`CropStream`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from srpipe.degrade.config import DegradeConfig, PDMConfig
from srpipe.engine import augment
from srpipe.engine.augment import ImageBank, split
from srpipe.errors import SrpipeError
from srpipe.io.imageio import ImageReadError, list_images, read_uint8
from srpipe import log


@dataclass
class ImageSet:
    """Decoded images of one folder: (3, H, W) uint8 tensors and their paths."""

    images: list[torch.Tensor]
    paths: list[Path]


def load_folder(folder: str | Path, *, min_size: int, what: str, warn=log.warn) -> ImageSet:
    """Decode every image of `folder`; unreadable or smaller-than-`min_size` files are listed once and skipped."""
    paths = list_images(folder)
    if not paths:
        raise SrpipeError(f"{what} folder {folder} contains no images (png, jpg, webp, tif, bmp)")
    images, kept, bad, small = [], [], [], []
    for p in paths:
        try:
            a = read_uint8(p)
        except ImageReadError as e:
            bad.append(str(e))
            continue
        if min(a.shape[:2]) < min_size:
            small.append(f"{p.name} ({a.shape[1]}x{a.shape[0]})")
            continue
        images.append(torch.from_numpy(a).permute(2, 0, 1).contiguous())
        kept.append(p)
    if bad:
        warn(f"skipped {len(bad)} unreadable file(s) in {folder}: " + "; ".join(bad))
    if small:
        warn(f"skipped {len(small)} image(s) smaller than {min_size} px in {folder}: " + ", ".join(small))
    if not images:
        raise SrpipeError(
            f"no usable {what} image in {folder}: every image is unreadable or smaller than {min_size} px; "
            f"lower the crop (e.g. --set data.hr_crop=256) or add larger images"
        )
    return ImageSet(images, kept)


def random_crops(
    images: list[torch.Tensor],
    n: int,
    size: int,
    gen: torch.Generator,
    *,
    flips: bool = False,
    rotations: bool = False,
    multiple: int = 1,
) -> torch.Tensor:
    """`n` random `size` x `size` crops as a float (n, 3, size, size) batch in [0, 1], sample by sample.

    The per-sample reference of what training does in one gather (`srpipe.engine.augment.ImageBank`): the
    same draws (`augment.draw`), the same pixels. Used for the fixed sample-grid crops.

    Args:
        multiple: crop corners land on multiples of this (keeps the bicubic grid aligned).
    """
    d = augment.draw(gen, image_sizes(images), n, size, multiple=multiple, flips=flips, rotations=rotations)
    return augment.reference_crops([im.permute(1, 2, 0) for im in images], d, size).float().div_(255)


def image_sizes(images: list[torch.Tensor]) -> torch.Tensor:
    """(N, 2) heights and widths of (3, H, W) images."""
    return torch.tensor([list(im.shape[-2:]) for im in images], dtype=torch.long)


def load_sets(cfg: DegradeConfig | PDMConfig, hr_dir, real_dir, hr_crop: int):
    """(HR set, real-LR training set, held-out real LR in [0, 1], split.json content).

    `real_dir` None is DSGAN's same-domain mode: the real samples are the HR images themselves, split
    the same way, and nothing is held out for the realism check.
    """
    hr_set = load_folder(hr_dir, min_size=hr_crop, what="HR")
    real_all = hr_set if real_dir is None else load_folder(real_dir, min_size=cfg.data.lr_crop, what="real-LR")
    train_idx, val_idx = split(len(real_all.images), cfg.data.val_fraction, cfg.seed)
    real_set = ImageSet([real_all.images[i] for i in train_idx], [real_all.paths[i] for i in train_idx])
    held_out = [] if real_dir is None else [real_all.images[i].float().div(255) for i in val_idx]
    listing = {"train": [p.name for p in real_set.paths], "held_out": [real_all.paths[i].name for i in val_idx]}
    return hr_set, real_set, held_out, listing


def image_banks(*sets: ImageSet, device: torch.device, placement: str) -> list[ImageBank]:
    """The sets as uint8 banks for batched device-side crops, on the GPU when they fit (`placement` auto)."""
    return [ImageBank([im.permute(1, 2, 0) for im in s.images], device=device, placement=placement) for s in sets]


@dataclass
class CropStream:
    """Each step's batch: HR crops, real-LR crops, JPEG qualities (this rank's rows).

    Every rank draws the global batch from one generator (`gen`, saved in checkpoints) and keeps its
    rows; the JPEG qualities are seeded per step, so a resumed run draws the same ones.
    """

    hr_bank: ImageBank
    real_bank: ImageBank
    gen: torch.Generator
    rows: slice
    cfg: DegradeConfig | PDMConfig
    hr_crop: int  # pdm: with the margin its valid blur and noise net trim
    jpeg_pool: torch.Tensor | None  # qualities the JPEG stage in the loop draws from; None: no JPEG stage
    multiple: int = 1  # HR crop corners on multiples of this (DSGAN: the scale, so the bicubic grid is aligned)
    channels_last: bool = False  # crops in the networks' memory format

    def next(self, step: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        data, batch, rows = self.cfg.data, self.cfg.optim.batch, self.rows
        flips, rotations, lr_crop = data.flips, data.rotations, data.lr_crop
        d_hr = augment.draw(
            self.gen, self.hr_bank.sizes, batch, self.hr_crop, multiple=self.multiple, flips=flips, rotations=rotations
        )
        d_real = augment.draw(self.gen, self.real_bank.sizes, batch, lr_crop, flips=flips, rotations=rotations)
        hr = self.hr_bank.crops(d_hr.slice(rows.start, rows.stop), self.hr_crop, channels_last=self.channels_last)
        real = self.real_bank.crops(d_real.slice(rows.start, rows.stop), lr_crop, channels_last=self.channels_last)
        hr, real = augment.to_float(hr), augment.to_float(real)
        if self.jpeg_pool is None:
            return hr, real, None
        q_gen = torch.Generator().manual_seed(self.cfg.seed * 1_000_003 + step)
        picks = torch.randint(len(self.jpeg_pool), (batch,), generator=q_gen)[rows.start : rows.stop]
        return hr, real, self.jpeg_pool[picks].to(hr.device)
