"""Paired LR/HR data for ESRGAN: decoded once, memory-mapped, cropped in aligned pairs.

A pairs folder holds ``hr/`` and ``lr/`` with matching file names (extensions may differ), as
`make-pairs` writes it (plus its ``pairs.json``), or any such folder. Each HR must be exactly
``scale`` times its LR; a pair that is not is an error naming the file.

Every image is decoded once into an RGB uint8 ``.npy`` in a cache keyed by the SHA-256 of the file's
bytes, and opened memory-mapped (`np.load(mmap_mode="r")`): data larger than RAM works, the OS page
cache is shared by every process reading it, and the training loop never decodes a PNG (FSSR's code
spent 0.5-2.6 s per step mostly loading data). The cache lives in ``$SRPIPE_CACHE_DIR``,
else ``$XDG_CACHE_HOME/srpipe``, else ``~/.cache/srpipe``, under ``decoded/``.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from srpipe.engine import augment
from srpipe import log
from srpipe.errors import SrpipeError
from srpipe.io.imageio import atomic_write_bytes, list_images, read_uint8
from srpipe.io.pair_folder import GT_DIR, LQ_DIR, PAIRS

# Bump when the decoded representation changes (colour handling, 16-bit rounding): old entries are
# then simply not found again.
DECODE_VERSION = b"srpipe-uint8-rgb-v1\0"


class PairsError(SrpipeError):
    pass


def default_cache_dir() -> Path:
    root = os.environ.get("SRPIPE_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "srpipe"
    )
    return Path(root) / "decoded"


def decoded(path: Path, cache_dir: Path) -> np.ndarray:
    """(H, W, 3) uint8 RGB of `path`, memory-mapped from the content-keyed cache (decoded on a miss)."""
    data = path.read_bytes()
    key = hashlib.sha256(DECODE_VERSION + data).hexdigest()
    entry = cache_dir / key[:2] / f"{key}.npy"
    if not entry.is_file():
        a = np.ascontiguousarray(read_uint8(path))
        buf = io.BytesIO()
        np.save(buf, a, allow_pickle=False)
        try:
            atomic_write_bytes(entry, buf.getvalue())  # concurrent writers of one key write equal bytes
        except OSError as e:
            raise SrpipeError(
                f"cannot write the decode cache {entry}: {e.strerror or e}; set SRPIPE_CACHE_DIR to a writable folder"
            ) from e
    return np.load(entry, mmap_mode="r", allow_pickle=False)


@dataclass
class Pair:
    name: str
    lr: np.ndarray  # (h, w, 3) uint8, memory-mapped
    hr: np.ndarray  # (h*scale, w*scale, 3) uint8, memory-mapped


def match_pairs(folder: str | Path) -> list[tuple[str, Path, Path]]:
    """(name, hr path, lr path) for every HR image of `folder/hr` with an LR of the same stem in `folder/lr`."""
    root = Path(folder)
    gt_dir, lq_dir = root / GT_DIR, root / LQ_DIR
    for d in (gt_dir, lq_dir):
        if not d.is_dir():
            raise PairsError(
                f"{root} has no {d.name}/ folder; --pairs needs hr/ and lr/ with matching file names "
                "(the output of make-pairs)"
            )
    hr = {p.stem: p for p in list_images(gt_dir)}
    lr = {p.stem: p for p in list_images(lq_dir)}
    if not hr:
        raise PairsError(f"{gt_dir} contains no images")
    missing_lr, missing_hr = sorted(set(hr) - set(lr)), sorted(set(lr) - set(hr))
    if missing_lr or missing_hr:
        parts = []
        if missing_lr:
            parts.append(f"no LR in {lq_dir} for {', '.join(hr[s].name for s in missing_lr[:5])}")
        if missing_hr:
            parts.append(f"no HR in {gt_dir} for {', '.join(lr[s].name for s in missing_hr[:5])}")
        raise PairsError("unmatched images: " + "; ".join(parts) + " (names must match, extensions may differ)")
    return [(s, hr[s], lr[s]) for s in sorted(hr)]


def _check_manifest(root: Path, scale: int) -> None:
    manifest = root / PAIRS
    if manifest.is_file():
        try:
            made = int(json.loads(manifest.read_text()).get("scale", scale))
        except (OSError, ValueError, TypeError, AttributeError):
            return  # not make-pairs' file: the per-image size check below still applies
        if made != scale:
            raise PairsError(
                f"{manifest} says these pairs are x{made} but the training scale is x{scale}; use --scale {made}"
            )


def load_pairs(
    folder: str | Path, scale: int, *, min_lr: int, cache_dir: Path | None = None, warn=log.warn
) -> list[Pair]:
    """Decode (or map from the cache) every pair; sizes must agree with `scale`.

    Pairs whose LR is smaller than `min_lr` (the LR patch) are skipped with one warning.
    """
    root = Path(folder)
    _check_manifest(root, scale)
    cache = cache_dir or default_cache_dir()
    pairs, small = [], []
    for name, hp, lp in match_pairs(root):
        hr, lr = decoded(hp, cache), decoded(lp, cache)
        (H, W), (h, w) = hr.shape[:2], lr.shape[:2]
        if (H, W) != (h * scale, w * scale):
            raise PairsError(
                f"pair {name}: {hp} is {W}x{H} but {lp} is {w}x{h}; at x{scale} the HR must be exactly "
                f"{w * scale}x{h * scale} (mod-crop the HR to a multiple of {scale} and resize the LR, or fix --scale)"
            )
        if min(h, w) < min_lr:
            small.append(f"{lp.name} ({w}x{h})")
            continue
        pairs.append(Pair(name, lr, hr))
    if small:
        warn(f"skipped {len(small)} pair(s) whose LR is smaller than the {min_lr} px LR patch: " + ", ".join(small[:5]))
    if not pairs:
        raise PairsError(f"no usable pair in {root}: every LR is smaller than {min_lr} px; lower data.hr_patch")
    return pairs


def random_batch(
    pairs: list[Pair],
    n: int,
    lr_patch: int,
    scale: int,
    gen: torch.Generator,
    *,
    flips: bool = True,
    rotations: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """`n` aligned random crops: (n, 3, p, p) LR and (n, 3, p*scale, p*scale) HR floats in [0, 1].

    The LR corner (y, x) maps to HR (y*scale, x*scale); the same flip / rot90 goes to both. This is
    the per-sample reference of `PairBank.batch` (same draws, same pixels), which training uses.
    """
    d = augment.draw(gen, pair_sizes(pairs), n, lr_patch, flips=flips, rotations=rotations)
    lr = augment.reference_crops([p.lr for p in pairs], d, lr_patch)
    hr = augment.reference_crops([p.hr for p in pairs], d, lr_patch * scale, corner_scale=scale)
    return lr.float().div_(255), hr.float().div_(255)


def pair_sizes(pairs: list[Pair]) -> torch.Tensor:
    """(N, 2) LR heights and widths."""
    return torch.tensor([list(p.lr.shape[:2]) for p in pairs], dtype=torch.long)


class PairBank:
    """The training pairs as two `augment.ImageBank`s (LR, HR): aligned batched crops on the device.

    Args:
        pairs: the training pairs (memory-mapped uint8).
        device: where batches are used.
        placement: see `augment.ImageBank` (``auto``: on the device when both fit).
    """

    def __init__(self, pairs: list[Pair], scale: int, *, device, placement: augment.Placement = "auto"):
        self.scale = scale
        self.sizes = pair_sizes(pairs)
        nbytes = sum(p.lr.nbytes + p.hr.nbytes for p in pairs)
        where = augment.choose_placement(nbytes, torch.device(device), placement)
        self.lr = augment.ImageBank([p.lr for p in pairs], device=device, placement=where)
        self.hr = augment.ImageBank([p.hr for p in pairs], device=device, placement=where)

    def draw(self, gen: torch.Generator, n: int, lr_patch: int, *, flips: bool, rotations: bool) -> augment.Draws:
        return augment.draw(gen, self.sizes, n, lr_patch, flips=flips, rotations=rotations)

    def batch(
        self, d: augment.Draws, lr_patch: int, *, channels_last: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(LR, HR) float batches in [0, 1] on the device for draws `d`."""
        lr = self.lr.crops(d, lr_patch, channels_last=channels_last)
        hr = self.hr.crops(d, lr_patch * self.scale, corner_scale=self.scale, channels_last=channels_last)
        return augment.to_float(lr), augment.to_float(hr)


def center_pair(pair: Pair, scale: int, *, max_lr: int, multiple: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Centre crop of a pair for validation: LR side <= `max_lr`, a multiple of `multiple`; (1, 3, ...) floats."""
    h, w = pair.lr.shape[:2]
    ch = min(h, max_lr) // multiple * multiple
    cw = min(w, max_lr) // multiple * multiple
    y, x = (h - ch) // 2, (w - cw) // 2
    lr = np.array(pair.lr[y : y + ch, x : x + cw])  # a copy: the memmap is read-only
    hr = np.array(pair.hr[y * scale : (y + ch) * scale, x * scale : (x + cw) * scale])
    to_t = lambda a: torch.from_numpy(a).permute(2, 0, 1).unsqueeze(0).float().div_(255)  # noqa: E731
    return to_t(lr), to_t(hr)
