"""FID and KID on feature arrays, and pytorch-fid's statistics files (mean and covariance, ``.npz``)."""

from __future__ import annotations

import contextlib
import io
import warnings
from pathlib import Path

import numpy as np

from srpipe.errors import SrpipeError


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
