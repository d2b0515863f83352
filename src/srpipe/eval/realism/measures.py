"""Per-image statistics of the realism report: noise, radial spectrum, band level, blockiness, colour.

Each takes one (3, H, W) image in [0, 1]; `srpipe.eval.realism` (the package) describes what each
measures and how the report compares sets with them. `RealismConfig` holds every setting that
changes the numbers.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from srpipe.errors import SrpipeError

# Immerkaer's noise operator: difference of two Laplacians; ||M||_2 = 6, so conv(noise)/6 has std sigma.
_NOISE_OP = torch.tensor([[1.0, -2.0, 1.0], [-2.0, 4.0, -2.0], [1.0, -2.0, 1.0]]) / 6.0
_MAD_TO_SIGMA = 1.4826  # 1 / Phi^-1(3/4): MAD of a Gaussian times this is its std
# Blockiness above which a set counts as JPEG-blocked. Clean images measure 1.0-1.1 (the strongest of
# eight noisy phase means is biased up on small images); JPEG q30-q50 about 1.2-1.4, q10 above 1.5.
BLOCKY = 1.15


@dataclass(frozen=True)
class RealismConfig:
    """What the degradation-realism report computes (every field changes the numbers)."""

    noise_block: int = 8  # block size for choosing flat regions, in pixels
    noise_flat_fraction: float = 0.2  # share of blocks (lowest smoothed gradient) treated as flat
    noise_min_pixels: int = 1024  # ...but at least this many residual pixels per image, for a stable MAD
    spectrum_bins: int = 16  # radial frequency bins over [0, 0.5] cycles/px
    hf_band: float = 0.25  # lower edge of the high-frequency band, cycles/px (upper half of the spectrum)
    band_bins: int = 32  # radial rings of `band_level` (1/64 cycles/px each, so the bands are whole rings)
    mid_band: tuple[float, float] = (0.25, 0.5)  # band_level's mid band, cycles/px
    # band_level's reference band, cycles/px: from 1/32, since the two rings nearest DC hold the image
    # layout and the window's leakage, and vary most on small LR images
    low_band: tuple[float, float] = (1 / 32, 0.125)
    inception: bool = True  # KID/FID rows when the Inception weights resolve
    dims: int = 2048  # Inception feature size (2048 = pool3)
    patch_size: int = 64  # LR patch side for KID/FID; lowered to the smallest image side (multiple of 8)
    patches: int = 16  # random patches per image for KID/FID
    kid_subsets: int = 100  # KID subsets (Binkowski et al. 2018)
    kid_subset_size: int = 1000  # KID subset size per side
    seed: int = 0  # patch positions and KID subsets

    def __post_init__(self):
        if not 0 < self.noise_flat_fraction <= 1:
            raise ValueError(f"noise_flat_fraction must be in (0, 1], got {self.noise_flat_fraction}")
        if not 0 < self.hf_band < 0.5:
            raise ValueError(f"hf_band must be in (0, 0.5), got {self.hf_band}")
        if self.spectrum_bins < 4:
            raise ValueError(f"spectrum_bins must be >= 4, got {self.spectrum_bins}")


def _luma(x: torch.Tensor) -> torch.Tensor:
    """(3, H, W) in [0, 1] -> (H, W) full-range BT.601 luma in [0, 1]."""
    w = torch.tensor([0.299, 0.587, 0.114], dtype=x.dtype, device=x.device)
    return (x * w.view(3, 1, 1)).sum(0)


def noise_sigma(x: torch.Tensor, cfg: RealismConfig = RealismConfig()) -> torch.Tensor:
    """Noise std per channel estimated in flat regions: (3, H, W) in [0, 1] -> (3,) in [0, 1] units.

    Robust to content: only the flattest blocks are used, and the MAD ignores the remaining outliers.
    """
    from srpipe.io.filters import low_pass

    x = x.double()
    c, h, w = x.shape
    if h < 8 or w < 8:
        raise SrpipeError(f"noise estimation needs at least 8x8 pixels, got {w}x{h}")
    res = F.conv2d(x.unsqueeze(1), _NOISE_OP.to(x).view(1, 1, 3, 3))[:, 0]  # (3, H-2, W-2)
    # Structure measure on a smoothed luma, so that the noise itself barely drives the selection
    # (selecting on noisy gradients would pick blocks where the noise happens to be low).
    y = low_pass(_luma(x)[None, None], 5, kind="gaussian", padding="replicate", sigma=1.5)[0, 0]
    gy, gx = torch.gradient(y)
    energy = (gx**2 + gy**2)[1:-1, 1:-1]  # aligned with the residual grid
    b = min(cfg.noise_block, energy.shape[0], energy.shape[1])
    hb, wb = energy.shape[0] // b, energy.shape[1] // b
    e_blocks = energy[: hb * b, : wb * b].reshape(hb, b, wb, b).mean(dim=(1, 3)).flatten()
    r_blocks = res[:, : hb * b, : wb * b].reshape(c, hb, b, wb, b).permute(0, 1, 3, 2, 4).reshape(c, hb * wb, b * b)
    k = max(math.ceil(cfg.noise_flat_fraction * len(e_blocks)), math.ceil(cfg.noise_min_pixels / (b * b)))
    k = min(k, len(e_blocks))
    flat = torch.argsort(e_blocks)[:k]
    r = r_blocks[:, flat].reshape(c, -1)
    med = r.median(dim=1, keepdim=True).values
    return _MAD_TO_SIGMA * (r - med).abs().median(dim=1).values


def radial_spectrum(x: torch.Tensor, bins: int = 16) -> torch.Tensor:
    """Radially averaged power spectrum of the luma: (3, H, W) -> (bins,) over [0, 0.5] cycles/px.

    Hann-windowed, mean removed, normalised by the window energy (power per pixel); NaN for a bin
    with no frequency sample (tiny images).
    """
    y = _luma(x.double())
    h, w = y.shape
    win = torch.outer(
        torch.hann_window(h, periodic=False, dtype=y.dtype), torch.hann_window(w, periodic=False, dtype=y.dtype)
    )
    y = (y - y.mean()) * win
    p = torch.fft.fft2(y).abs() ** 2 / win.pow(2).sum()
    fy = torch.fft.fftfreq(h, dtype=y.dtype)[:, None]
    fx = torch.fft.fftfreq(w, dtype=y.dtype)[None, :]
    r = torch.sqrt(fy**2 + fx**2)
    idx = torch.floor(r / 0.5 * bins).long()
    keep = (idx < bins) & (r > 0)  # drop DC and the corners beyond Nyquist
    sums = torch.zeros(bins, dtype=y.dtype).index_add_(0, idx[keep], p[keep])
    counts = torch.zeros(bins, dtype=y.dtype).index_add_(0, idx[keep], torch.ones_like(p[keep]))
    return torch.where(counts > 0, sums / counts.clamp(min=1), torch.full_like(sums, float("nan")))


def band_level(x: torch.Tensor, cfg: RealismConfig = RealismConfig()) -> float:
    """Mid-band power of the luma relative to its low band, in dB: (3, H, W) in [0, 1] -> float.

    From `radial_spectrum` with `cfg.band_bins` rings over [0, 0.5] cycles/px: the mean of 10*log10(power)
    over the rings whose centre lies in `cfg.mid_band` minus that mean over `cfg.low_band`. White
    noise measures about 0 dB; natural photos about -15 dB (their power falls roughly as 1/f^2); a
    blur lowers it, noise and sharpening raise it. It is the LR's frequency response at one number,
    the statistic a learned blur must match (DSGAN's LR was sharper than bicubic where the real LR
    was softer, on a strong-blur degradation).
    """
    with np.errstate(divide="ignore"):
        logp = 10 * np.log10(radial_spectrum(x, cfg.band_bins).numpy())
    logp = np.where(np.isfinite(logp), logp, np.nan)
    centres = (np.arange(cfg.band_bins) + 0.5) * 0.5 / cfg.band_bins
    (m0, m1), (l0, l1) = cfg.mid_band, cfg.low_band
    mid, low = logp[(centres >= m0) & (centres < m1)], logp[(centres >= l0) & (centres < l1)]
    if not (np.isfinite(mid).any() and np.isfinite(low).any()):
        return float("nan")
    return float(np.nanmean(mid) - np.nanmean(low))


def blockiness(x: torch.Tensor) -> float:
    """JPEG 8x8 blocking of (3, H, W) in [0, 1]: strongest grid phase over the rest (1.0 = none).

    The largest 10% of neighbour differences (real edges) are left out before averaging per phase:
    a few strong edges that happen to fall on one phase would otherwise look like a grid, while
    JPEG's block steps are small and everywhere.
    """
    y = _luma(x.double()) * 255

    def ratio(diff: torch.Tensor) -> float:  # diff: (rows, n) differences between column j and j+1
        n = diff.shape[1]
        if n < 16:
            return float("nan")
        a = diff.abs()
        flat = a.flatten()
        cut = flat.kthvalue(max(1, int(0.9 * len(flat)))).values
        keep = (a <= cut).double()
        d = (a * keep).sum(0) / keep.sum(0).clamp(min=1)
        phase = torch.arange(n) % 8
        per = torch.stack([d[phase == p].mean() for p in range(8)])
        best = int(per.argmax())  # any grid offset (a crop moves it)
        rest = torch.cat([per[:best], per[best + 1 :]]).mean()
        return float(per[best] / rest.clamp(min=1e-6))

    with warnings.catch_warnings():  # both directions too small to measure: NaN is the answer
        warnings.simplefilter("ignore", RuntimeWarning)
        return float(np.nanmean([ratio(y[:, 1:] - y[:, :-1]), ratio((y[1:, :] - y[:-1, :]).T)]))


def value_histograms(x: torch.Tensor) -> torch.Tensor:
    """(3, 256) counts of 8-bit levels per channel."""
    q = (x.clamp(0, 1) * 255).round().long().reshape(3, -1)
    return torch.stack([torch.bincount(q[i], minlength=256) for i in range(3)]).double()


def wasserstein_levels(h1: torch.Tensor, h2: torch.Tensor) -> float:
    """Mean over channels of the 1-D Wasserstein distance between histograms, in levels."""
    c1 = torch.cumsum(h1 / h1.sum(1, keepdim=True), 1)
    c2 = torch.cumsum(h2 / h2.sum(1, keepdim=True), 1)
    return float((c1 - c2).abs().sum(1).mean())
