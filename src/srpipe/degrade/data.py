"""Unpaired DSGAN data: HR crops for the generator, real-LR crops for the discriminator.

Images are decoded once into uint8 tensors in memory (DSGAN folders are small: a few hundred
photos); crops, flips and rotations are drawn from one `torch.Generator` whose state goes into
checkpoints, so a resumed run continues the same random stream.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from srpipe.engine import augment
from srpipe.errors import SrpipeError
from srpipe.io.imageio import ImageReadError, list_images, read_uint8


@dataclass
class ImageSet:
    """Decoded images of one folder: (3, H, W) uint8 tensors and their paths."""

    images: list[torch.Tensor]
    paths: list[Path]


def load_folder(folder: str | Path, *, min_size: int, what: str, warn=print) -> ImageSet:
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
