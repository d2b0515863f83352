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

Modules: `stats` (FID, KID, statistics files), `features` (the spec, image reading, Inception),
`cache` (the feature cache); this one extracts a folder's features and compares two sides. Their
names are importable from here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from srpipe.errors import SrpipeError, UsageError
from srpipe.eval.fid.cache import (  # noqa: F401  (re-exported)
    CACHE_VERSION,
    _cache_file,
    _cache_load,
    _cache_store,
    _weights_fingerprint,
    cache_dir,
    content_key,
)
from srpipe.eval.fid.features import (  # noqa: F401  (re-exported)
    FID_EXTS,
    MAX_BATCH_PIXELS,
    FeatureSpec,
    _patch_batches,
    _whole_batches,
    crop_positions,
    image_crops,
    inception,
    list_fid_images,
    load_whole,
    run_inception,
)
from srpipe.eval.fid.stats import (  # noqa: F401  (re-exported)
    fid,
    frechet_distance,
    kid,
    load_stats,
    save_stats,
    small_sample_warning,
    stats,
)


@dataclass
class FeatureSet:
    """Features of one folder: (N, dims) float64 rows, the source files, and where they came from."""

    features: np.ndarray
    files: list[Path]
    cached: bool
    key: str


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
    extract = dict(weights_dir=weights_dir, device=device, batch_size=batch_size, cache=cache, use_cache=use_cache)
    sides, feats, moments = {}, {}, {}
    for label, path in (("a", path_a), ("b", path_b)):
        if path is not None:
            sides[label], feats[label], moments[label] = _side(label, path, spec, extract, progress)
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
        "warnings": [],
        "saved_stats": str(save_stats_to) if save_stats_to is not None else None,
    }
    if path_b is not None:
        _scores(result, spec, {k: v for k, v in feats.items() if v is not None}, moments, kid_subsets)
    return result


def _side(label: str, path, spec: FeatureSpec, extract: dict, progress) -> tuple[dict, np.ndarray | None, tuple]:
    """(what the report says of one side, its features (None for a statistics file), (mu, sigma))."""
    if _is_stats(path):
        mu, sigma = load_stats(path)
        return {"path": str(path), "kind": "stats", "count": None, "cached": False}, None, (mu, sigma)

    def step(done, total):
        if progress is not None:
            progress(label, done, total)

    fs = folder_features(path, spec, progress=step, **extract)
    side = {
        "path": str(path),
        "kind": "folder",
        "images": len(fs.files),
        "count": len(fs.features),
        "cached": fs.cached,
    }
    if len(fs.features) < 2:
        raise SrpipeError(f"{path}: FID and KID need at least 2 samples, got {len(fs.features)}")
    return side, fs.features, stats(fs.features)


def _scores(result: dict, spec: FeatureSpec, feats: dict, moments: dict, kid_subsets: int) -> None:
    """FID (and KID when both sides have features) into `result`, with the warnings that go with them."""
    warn = result["warnings"]
    dims = {len(m[0]) for m in moments.values()}
    if len(dims) > 1:
        raise SrpipeError(
            f"the two sides have {' and '.join(str(len(m[0])) for m in moments.values())}-d "
            "statistics; a statistics file must come from the same --dims"
        )
    for label in ("a", "b"):
        if label in feats:
            w = small_sample_warning(len(feats[label]), spec.dims, result[label]["path"])
            if w:
                warn.append(w)
    value, notes = frechet_distance(*moments["a"], *moments["b"])
    result["fid"] = value
    warn.extend(notes)
    if "a" in feats and "b" in feats:
        size = result["kid_subset_size"]
        km, ks = kid(feats["a"], feats["b"], subsets=kid_subsets, subset_size=size, seed=spec.seed)
        result["kid_mean"], result["kid_std"] = km, ks
        m, n = min(len(feats["a"]), size), min(len(feats["b"]), size)
        result["kid_subsets"] = 1 if (m == len(feats["a"]) and n == len(feats["b"])) else kid_subsets
    else:
        warn.append("KID needs features on both sides; a statistics file only has mean and covariance")
