"""FID and KID on pytorch-fid's InceptionV3 features, with a content-keyed feature cache.

Library entry points:

* `folder_features(folder, spec, ...) -> FeatureSet`: Inception features of every image (whole-image
  mode) or of N crops per image (patch mode), from the cache when the folder content is unchanged.
* `fid(f1, f2)`, `kid(f1, f2)`, `stats(f)`: the metrics on feature arrays.
* `compare(path_a, path_b, spec, ...) -> dict`: what `srpipe eval-fid` prints; either side may be a
  pytorch-fid ``.npz`` statistics file (then FID only, since KID needs the features).

Agreement with pytorch-fid (whole-image mode). The network is pytorch-fid's own `InceptionV3` (FID
weights, `resize_input=True`, `normalize_input=True`: bilinear resize to 299x299, then [-1, 1]); files
are decoded as pytorch-fid does (`PIL.Image.open(f).convert("RGB")`, `ToTensor`) and batched in the
same order and sizes (EXIF orientation is ignored, as there), and the distance is pytorch-fid's
`calculate_frechet_distance`. So on any folder `python -m pytorch_fid` can read, the number is the
same. Where srpipe differs, on purpose:

* listing: pytorch-fid globs ``*.png``, ``*.jpg``... case-sensitively, so on Linux it silently skips
  ``IMG_0001.JPG``; srpipe takes the same extensions in any case (same files otherwise, same order);
* 16-bit grey images: Pillow opens them as mode ``I;16`` and `convert("RGB")` clips every sample
  above 255 (a white image); srpipe reads those with `srpipe.io.imageio` and scales them to [0, 1]
  (16-bit RGB is unaffected: Pillow already reduces it to 8 bits);
* mixed image sizes: pytorch-fid's loader cannot stack them and crashes; srpipe batches runs of equal
  size (each image is resized to 299x299 on its own, so batching does not change the features).

Patch mode reads images with `srpipe.io.imageio` (EXIF orientation applied) and takes N crops of PxP per
image, at seeded random positions or on a non-overlapping grid; Inception upsamples each crop to 299.

KID (Binkowski et al. 2018, "Demystifying MMD GANs"): unbiased MMD^2 with the kernel
k(x, y) = (x.y / d + 1)^3, averaged over `subsets` random subsets of `subset_size` features per side
(drawn without replacement); the std over subsets is reported with it. FID's covariance estimate is
biased on small sets (below `dims` samples it is rank-deficient), KID is not: a warning says so.

Feature cache: ``$SRPIPE_CACHE/features`` (default ``~/.cache/srpipe/features``), one ``.npz`` of raw
float32 features per key; the key hashes the file names and bytes, the feature spec, the decoding
mode and a fingerprint of the Inception weight file, so any change recomputes.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import warnings
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from srpipe.errors import SrpipeError, UsageError

CACHE_VERSION = 1  # bump when feature extraction changes in a way the key cannot see
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


@dataclass
class FeatureSet:
    """Features of one folder: (N, dims) float64 rows, the source files, and where they came from."""

    features: np.ndarray
    files: list[Path]
    cached: bool
    key: str


# ---------------------------------------------------------------- metrics on features


def stats(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance (pytorch-fid's `np.mean(axis=0)`, `np.cov(rowvar=False)`) of (N, d) features."""
    f = np.asarray(features, dtype=np.float64)
    if f.ndim != 2 or len(f) < 2:
        raise SrpipeError(f"FID needs at least 2 feature vectors, got {len(f) if f.ndim == 2 else f.shape}")
    return np.mean(f, axis=0), np.cov(f, rowvar=False)


def frechet_distance(mu1, sigma1, mu2, sigma2) -> tuple[float, list[str]]:
    """pytorch-fid's `calculate_frechet_distance`, with its prints and warnings turned into notes."""
    from pytorch_fid.fid_score import calculate_frechet_distance

    if np.shape(mu1) != np.shape(mu2):
        raise SrpipeError(
            f"cannot compare {np.shape(mu1)[0]}-d with {np.shape(mu2)[0]}-d statistics (use the same --dims)"
        )
    notes: list[str] = []
    printed = io.StringIO()
    # pytorch-fid prints to stdout when it regularises a singular product; stdout is for results.
    with contextlib.redirect_stdout(printed), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            value = float(calculate_frechet_distance(mu1, sigma1, mu2, sigma2))
        except ValueError as e:  # "Imaginary component ..."
            raise SrpipeError(
                f"FID is numerically undefined on these statistics ({e}); use more images or --patches"
            ) from None
    if printed.getvalue().strip():
        notes.append("pytorch-fid: " + printed.getvalue().strip())
    if any("singular" in str(w.message).lower() for w in caught):
        notes.append("covariance product is singular (too few samples); FID is unreliable, prefer KID")
    return value, notes


def fid(f1: np.ndarray, f2: np.ndarray) -> float:
    """FID between two (N, d) feature arrays (pytorch-fid's formula)."""
    return frechet_distance(*stats(f1), *stats(f2))[0]


def kid(
    f1: np.ndarray, f2: np.ndarray, *, subsets: int = 100, subset_size: int = 1000, seed: int = 0
) -> tuple[float, float]:
    """Unbiased KID (MMD^2, cubic polynomial kernel): mean and std over `subsets` random subsets.

    Each subset draws min(n_i, subset_size) rows per side without replacement. When both sides are
    smaller than `subset_size` every subset is the whole set, so it is computed once (std 0).
    """
    x_all = np.asarray(f1, dtype=np.float64)
    y_all = np.asarray(f2, dtype=np.float64)
    if x_all.shape[1] != y_all.shape[1]:
        raise SrpipeError(f"cannot compare {x_all.shape[1]}-d with {y_all.shape[1]}-d features")
    m, n = min(len(x_all), subset_size), min(len(y_all), subset_size)
    if m < 2 or n < 2:
        raise SrpipeError(f"KID needs at least 2 samples per side, got {len(x_all)} and {len(y_all)}")
    d = x_all.shape[1]
    rng = np.random.default_rng(seed)
    if m == len(x_all) and n == len(y_all):
        subsets = 1
    values = np.empty(subsets)
    for s in range(subsets):
        x = x_all if m == len(x_all) else x_all[rng.choice(len(x_all), m, replace=False)]
        y = y_all if n == len(y_all) else y_all[rng.choice(len(y_all), n, replace=False)]
        kxx = (x @ x.T / d + 1) ** 3
        kyy = (y @ y.T / d + 1) ** 3
        kxy = (x @ y.T / d + 1) ** 3
        # Unbiased: within-set sums leave out the i == j terms (Binkowski et al. 2018, eq. 3).
        values[s] = (
            (kxx.sum() - np.trace(kxx)) / (m * (m - 1)) + (kyy.sum() - np.trace(kyy)) / (n * (n - 1)) - 2 * kxy.mean()
        )
    return float(values.mean()), float(values.std())


def small_sample_warning(n: int, dims: int, what: str) -> str | None:
    if n < dims:
        return (
            f"FID of {what} rests on {n} samples for {dims}-d features: the covariance is rank-deficient "
            f"and FID is biased upward on small sets; compare KID (unbiased) or use more images / --patches"
        )
    return None


# ---------------------------------------------------------------- stats files


def save_stats(path: str | Path, mu: np.ndarray, sigma: np.ndarray) -> None:
    """pytorch-fid-compatible ``.npz`` (keys mu, sigma), written atomically."""
    from srpipe.io.imageio import atomic_write_bytes

    buf = io.BytesIO()
    np.savez_compressed(buf, mu=mu, sigma=sigma)
    try:
        atomic_write_bytes(path, buf.getvalue())
    except OSError as e:
        raise SrpipeError(f"cannot write statistics file {path}: {e.strerror or e}") from e


def load_stats(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """(mu, sigma) from a pytorch-fid ``.npz``; errors name the file and what is wrong with it."""
    p = Path(path)
    try:
        with np.load(p, allow_pickle=False) as f:
            if "mu" not in f or "sigma" not in f:
                raise SrpipeError(
                    f"{p} is not a pytorch-fid statistics file (needs arrays mu and sigma, has {list(f.keys())})"
                )
            mu, sigma = f["mu"][:], f["sigma"][:]
    except SrpipeError:
        raise
    except Exception as e:
        raise SrpipeError(f"cannot read statistics file {p}: {e}".splitlines()[0]) from None
    if mu.ndim != 1 or sigma.shape != (len(mu), len(mu)):
        raise SrpipeError(f"{p}: mu {mu.shape} and sigma {sigma.shape} do not fit together")
    return mu.astype(np.float64), sigma.astype(np.float64)


# ---------------------------------------------------------------- images


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


# ---------------------------------------------------------------- features


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


def cache_dir(path: str | Path | None = None) -> Path:
    """Feature cache folder: `path`, else $SRPIPE_CACHE/features, else ~/.cache/srpipe/features."""
    if path:
        return Path(path)
    return Path(os.environ.get("SRPIPE_CACHE") or "~/.cache/srpipe").expanduser() / "features"


def _weights_fingerprint(weights_dir) -> str | None:
    """Size plus hashes of the first and last MiB of the Inception file, or None if it is absent."""
    from srpipe.engine import weights

    p = weights.find("inception", weights_dir)
    if p is None:
        return None
    size = p.stat().st_size
    h = hashlib.sha256(str(size).encode())
    with p.open("rb") as fh:
        h.update(fh.read(1 << 20))
        fh.seek(max(0, size - (1 << 20)))
        h.update(fh.read(1 << 20))
    return h.hexdigest()


def content_key(files: list[Path], spec: FeatureSpec, weights_fp: str) -> str:
    """Hash of (file names and bytes, feature spec, decoder, weights) identifying a feature array."""
    h = hashlib.sha256()
    meta = {
        "v": CACHE_VERSION,
        "spec": spec.key_dict(),
        "decoder": "pil-rgb" if spec.whole else "srpipe",
        "weights": weights_fp,
    }
    h.update(json.dumps(meta, sort_keys=True).encode())
    for f in files:
        h.update(f.name.encode("utf-8") + b"\0")
        fh = hashlib.sha256()
        with f.open("rb") as src:
            for chunk in iter(lambda: src.read(1 << 20), b""):
                fh.update(chunk)
        h.update(fh.digest())
    return h.hexdigest()


def _cache_file(root: Path, key: str) -> Path:
    return root / key[:2] / f"{key}.npz"  # sharded like DVC's run cache


def _cache_load(path: Path, n_files: int) -> np.ndarray | None:
    try:
        with np.load(path, allow_pickle=False) as f:
            feats = f["features"]
            if int(f["n_files"]) != n_files:
                return None
            return feats.astype(np.float64)
    except Exception:  # missing, truncated or foreign file: recompute
        return None


def _cache_store(path: Path, feats: np.ndarray, n_files: int) -> None:
    from srpipe.io.imageio import atomic_write_bytes

    buf = io.BytesIO()
    # Inception outputs float32, so float32 storage is lossless.
    np.savez(buf, features=feats.astype(np.float32), n_files=np.int64(n_files))
    try:
        atomic_write_bytes(path, buf.getvalue())
    except OSError:  # a read-only or full cache must not fail the evaluation
        pass


def folder_features(
    folder: str | Path,
    spec: FeatureSpec = FeatureSpec(),
    *,
    weights_dir=None,
    device="cpu",
    batch_size: int = 50,
    cache: str | Path | None = None,
    use_cache: bool = True,
    progress: Callable[[int, int | None], None] | None = None,
) -> FeatureSet:
    """Inception features of a folder's images (whole or crops), cached by folder content.

    Whole-image mode reads top-level files like pytorch-fid; patch mode reads top-level images with
    `srpipe.io.imageio`. `progress(done, total)` is called after each batch (total None in patch mode).
    """
    folder = Path(folder)
    if spec.whole:
        files = list_fid_images(folder)
    else:
        from srpipe.io.imageio import list_images

        files = list_images(folder)
    if not files:
        raise SrpipeError(f"no images in {folder}")
    fp = _weights_fingerprint(weights_dir) if use_cache else None
    key = content_key(files, spec, fp) if fp is not None else ""
    target = _cache_file(cache_dir(cache), key) if key else None
    if target is not None:
        feats = _cache_load(target, len(files))
        if feats is not None:
            return FeatureSet(feats, files, True, key)
    model = inception(spec.dims, weights_dir=weights_dir, device=device)
    if spec.whole:
        batches = _whole_batches(files, batch_size)
        count = len(files)
    else:
        batches = _patch_batches(((f.name, f) for f in files), spec, batch_size)
        count = None
    feats = run_inception(model, batches, device=device, count=count, progress=progress)
    if target is not None:
        _cache_store(target, feats, len(files))
    return FeatureSet(feats, files, False, key)


def tensor_features(
    images: Iterable, spec: FeatureSpec, *, model=None, weights_dir=None, device="cpu", batch_size: int = 50
) -> np.ndarray:
    """Features of crops of in-memory images: `images` yields (name, (3, H, W) tensor or path).

    Patch mode only (spec.patches > 0); used by `srpipe.eval.realism` on LR images. Not cached.
    """
    if spec.whole:
        raise ValueError("tensor_features works on crops: give spec.patches > 0")
    if model is None:
        model = inception(spec.dims, weights_dir=weights_dir, device=device)
    return run_inception(model, _patch_batches(images, spec, batch_size), device=device)


# ---------------------------------------------------------------- eval-fid


def _is_stats(path: str | Path) -> bool:
    return str(path).lower().endswith(".npz")


def compare(
    path_a: str | Path,
    path_b: str | Path | None,
    spec: FeatureSpec = FeatureSpec(),
    *,
    kid_subsets: int = 100,
    kid_subset_size: int = 1000,
    save_stats_to: str | Path | None = None,
    weights_dir=None,
    device="cpu",
    batch_size: int = 50,
    cache: str | Path | None = None,
    use_cache: bool = True,
    progress: Callable[[str, int, int | None], None] | None = None,
) -> dict:
    """FID and KID between two folders (or .npz statistics files); what `srpipe eval-fid` reports.

    With `path_b` None, only `save_stats_to` is written (pytorch-fid's ``--save-stats``).
    `save_stats_to` receives the statistics of `path_a`. Returns a JSON-able dict:
    ``{"a": {...}, "b": {...}, "spec": {...}, "fid", "kid_mean", "kid_std", "kid_subsets",
    "kid_subset_size", "warnings": [...], "saved_stats"}``.
    """
    if path_b is None and save_stats_to is None:
        raise UsageError("give two paths to compare, or one path and --save-stats FILE")
    if save_stats_to is not None and _is_stats(path_a):
        raise UsageError(f"--save-stats needs a folder as the first path, got statistics file {path_a}")
    for path in (path_a, path_b):  # both checked before minutes of feature extraction
        if path is not None and not Path(path).exists():
            raise SrpipeError(f"{'statistics file' if _is_stats(path) else 'folder'} {path} does not exist")
    sides = {}
    feats = {}
    moments = {}
    warn: list[str] = []
    for label, path in (("a", path_a), ("b", path_b)):
        if path is None:
            continue
        if _is_stats(path):
            mu, sigma = load_stats(path)
            moments[label] = (mu, sigma)
            sides[label] = {"path": str(path), "kind": "stats", "count": None, "cached": False}
            continue

        def step(done, total, _label=label):
            if progress is not None:
                progress(_label, done, total)

        fs = folder_features(
            path,
            spec,
            weights_dir=weights_dir,
            device=device,
            batch_size=batch_size,
            cache=cache,
            use_cache=use_cache,
            progress=step,
        )
        feats[label] = fs.features
        sides[label] = {
            "path": str(path),
            "kind": "folder",
            "images": len(fs.files),
            "count": len(fs.features),
            "cached": fs.cached,
        }
        if len(fs.features) < 2:
            raise SrpipeError(f"{path}: FID and KID need at least 2 samples, got {len(fs.features)}")
        moments[label] = stats(fs.features)
    if save_stats_to is not None:
        save_stats(save_stats_to, *moments["a"])
    result = {
        "a": sides.get("a"),
        "b": sides.get("b"),
        "spec": asdict(spec),
        "fid": None,
        "kid_mean": None,
        "kid_std": None,
        "kid_subsets": None,
        "kid_subset_size": kid_subset_size,
        "warnings": warn,
        "saved_stats": str(save_stats_to) if save_stats_to is not None else None,
    }
    if path_b is None:
        return result
    dims = {len(m[0]) for m in moments.values()}
    if len(dims) > 1:
        raise SrpipeError(
            f"the two sides have {' and '.join(str(len(m[0])) for m in moments.values())}-d "
            "statistics; a statistics file must come from the same --dims"
        )
    for label in ("a", "b"):
        if label in feats:
            w = small_sample_warning(len(feats[label]), spec.dims, sides[label]["path"])
            if w:
                warn.append(w)
    value, notes = frechet_distance(*moments["a"], *moments["b"])
    result["fid"] = value
    warn.extend(notes)
    if "a" in feats and "b" in feats:
        km, ks = kid(feats["a"], feats["b"], subsets=kid_subsets, subset_size=kid_subset_size, seed=spec.seed)
        result["kid_mean"], result["kid_std"] = km, ks
        m, n = min(len(feats["a"]), kid_subset_size), min(len(feats["b"]), kid_subset_size)
        result["kid_subsets"] = 1 if (m == len(feats["a"]) and n == len(feats["b"])) else kid_subsets
    else:
        warn.append("KID needs features on both sides; a statistics file only has mean and covariance")
    return result
