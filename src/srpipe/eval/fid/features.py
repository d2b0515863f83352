"""Inception features for FID/KID: which features (`FeatureSpec`), the images as pytorch-fid reads
them (whole-image mode) or as crops (patch mode), and the network that maps them to features."""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from srpipe.errors import SrpipeError, UsageError

# pytorch-fid's IMAGE_EXTENSIONS (fid_score.py); matched case-insensitively here.
FID_EXTS = ("bmp", "jpg", "jpeg", "pgm", "png", "ppm", "tif", "tiff", "webp")
MAX_BATCH_PIXELS = 1 << 25  # whole-image batches hold at most this many source pixels (~400 MB float32)


@dataclass(frozen=True)
class FeatureSpec:
    """Which features are extracted (every field changes the result and enters the cache key)."""

    dims: int = 2048  # Inception feature size: 2048 = pool3, the FID standard; 64/192/768 = earlier blocks
    patches: int = 0  # 0: whole images (pytorch-fid); N > 0: N crops per image
    patch_size: int = 64  # crop side in pixels (patch mode)
    patch_mode: Literal["random", "grid"] = "random"  # seeded random positions, or a non-overlapping grid
    seed: int = 0  # random crop positions (patch mode)

    def __post_init__(self):
        if self.dims not in (64, 192, 768, 2048):
            raise ValueError(f"dims must be 64, 192, 768 or 2048 (pytorch-fid's blocks), got {self.dims}")
        if self.patches < 0:
            raise ValueError(f"patches must be >= 0, got {self.patches}")
        if self.patches and self.patch_size < 8:
            raise ValueError(f"patch_size must be >= 8, got {self.patch_size}")
        if self.patch_mode not in ("random", "grid"):
            raise ValueError(f"patch_mode must be random or grid, got {self.patch_mode!r}")

    @property
    def whole(self) -> bool:
        return self.patches == 0

    def key_dict(self) -> dict:
        d = asdict(self)
        if self.whole:  # patch fields do not change whole-image features
            d = {"dims": self.dims, "patches": 0}
        return d


def list_fid_images(folder: str | Path) -> list[Path]:
    """Top-level files with pytorch-fid's extensions (any case), sorted by path as pytorch-fid does."""
    root = Path(folder)
    if not root.is_dir():
        raise SrpipeError(f"{root} is not a folder (nor a .npz statistics file)")
    return sorted(p for p in root.iterdir() if p.suffix.lower().lstrip(".") in FID_EXTS and p.is_file())


def load_whole(path: Path):
    """(3, H, W) float32 in [0, 1], decoded as pytorch-fid does (PIL, convert RGB, ToTensor).

    16-bit images are the exception (see the module docstring): `srpipe.io.imageio` reads them.
    """
    import torch
    from PIL import Image

    from srpipe.io.imageio import ImageReadError, read_image

    try:
        with Image.open(path) as im:
            if im.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
                return read_image(path)[0]
            a = np.asarray(im.convert("RGB"))
    except (OSError, ValueError, Image.DecompressionBombError) as e:
        raise ImageReadError(f"{path} is not a readable image: {e}".splitlines()[0]) from None
    # torchvision's ToTensor: uint8 HWC -> float CHW / 255
    return torch.from_numpy(a.copy()).permute(2, 0, 1).float().div(255)


def crop_positions(h: int, w: int, spec: FeatureSpec, name: str) -> list[tuple[int, int]]:
    """Top-left corners of the crops of one image (deterministic: seeded by spec.seed and `name`)."""
    p = spec.patch_size
    if spec.patch_mode == "grid":
        cells = [(y, x) for y in range(0, h - p + 1, p) for x in range(0, w - p + 1, p)]
        if len(cells) <= spec.patches:
            return cells
        pick = np.linspace(0, len(cells) - 1, spec.patches).round().astype(int)  # spread over the image
        return [cells[i] for i in pick]
    # Seeded per file name, so the crops of an image do not depend on what else is in the folder.
    rng = np.random.default_rng([spec.seed, zlib.crc32(name.encode("utf-8"))])
    ys = rng.integers(0, h - p + 1, spec.patches)
    xs = rng.integers(0, w - p + 1, spec.patches)
    return list(zip(ys.tolist(), xs.tolist()))


def image_crops(img, spec: FeatureSpec, name: str):
    """(N, 3, P, P) crops of a (3, H, W) image; an error if the image is smaller than a crop."""
    import torch

    h, w = img.shape[-2:]
    p = spec.patch_size
    if h < p or w < p:
        raise UsageError(f"{name} is {w}x{h}, smaller than the {p}x{p} patches; lower --patch-size")
    pos = crop_positions(h, w, spec, name)
    return torch.stack([img[:, y : y + p, x : x + p] for y, x in pos])


def _whole_batches(files: list[Path], batch_size: int) -> Iterator:
    """Runs of consecutive equal-size images, at most `batch_size` (and MAX_BATCH_PIXELS) per batch."""
    import torch

    batch: list = []
    for f in files:
        img = load_whole(f)
        cap = max(1, min(batch_size, MAX_BATCH_PIXELS // (img.shape[1] * img.shape[2])))
        if batch and (batch[0].shape != img.shape or len(batch) >= cap):
            yield torch.stack(batch)
            batch = []
        batch.append(img)
    if batch:
        yield torch.stack(batch)


def _patch_batches(items: Iterable, spec: FeatureSpec, batch_size: int) -> Iterator:
    """Batches of crops from (name, image) pairs, `image` a path or a (3, H, W) tensor."""
    import torch

    from srpipe.io.imageio import read_image

    pending = []
    for name, img in items:
        if not isinstance(img, torch.Tensor):
            img = read_image(img)[0]
        pending.extend(image_crops(img, spec, name))
        while len(pending) >= batch_size:
            yield torch.stack(pending[:batch_size])
            pending = pending[batch_size:]
    if pending:
        yield torch.stack(pending)


_MODELS: dict = {}  # loaded networks by (weight file identity, dims, device): loading takes seconds


def inception(dims: int = 2048, *, weights_dir=None, device="cpu"):
    """pytorch-fid's InceptionV3 through `srpipe.engine.weights` (MissingWeightsError if the file is absent).

    Frozen and in eval mode; one instance per weight file, dims and device is kept for the process.
    """
    from srpipe.engine import weights

    path = weights.resolve("inception", weights_dir)
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns, dims, str(device))
    if key not in _MODELS:
        if len(_MODELS) >= 2:  # bound the memory: at most two networks stay loaded
            _MODELS.pop(next(iter(_MODELS)))
        _MODELS[key] = weights.fid_inception(weights_dir, dims=dims).to(device)
    return _MODELS[key]


def run_inception(
    model,
    batches: Iterable,
    *,
    device="cpu",
    count: int | None = None,
    progress: Callable[[int, int | None], None] | None = None,
) -> np.ndarray:
    """(N, dims) float64 features of (B, 3, H, W) batches in [0, 1] (pytorch-fid's `get_activations`)."""
    import torch
    import torch.nn.functional as F

    out = []
    done = 0
    with torch.no_grad():
        for batch in batches:
            pred = model(batch.to(device))[0]
            if pred.shape[2] != 1 or pred.shape[3] != 1:  # blocks before pool3: average as pytorch-fid does
                pred = F.adaptive_avg_pool2d(pred, output_size=(1, 1))
            out.append(pred.squeeze(3).squeeze(2).cpu().numpy().astype(np.float64))
            done += len(batch)
            if progress is not None:
                progress(done, count)
    if not out:
        return np.empty((0, 0))
    return np.concatenate(out)
