"""How realistic is a synthetic LR set? Compare it, and the bicubic LR of the same HR, with real LR.

Library entry point (called by `srpipe eval-degradation` and by `degrade-train` on its held-out
real-LR images)::

    degradation_report(real, synthetic, hr, scale, *, cfg=RealismConfig(), weights_dir=None,
                       device="cpu") -> dict

    real, synthetic, hr: sequences of image paths or (3, H, W) float tensors in [0, 1]
        (real: real low-resolution photos; synthetic: the `make-pairs` LR; hr: the clean HR images
        the synthetic LR was made from, whose bicubic LR is computed here with
        `srpipe.io.resize.bicubic_down` after a mod-crop to `scale`).
    returns {"scale", "counts": {"real", "synthetic", "bicubic"}, "rows": [row...], "notes": [...],
             "jpeg": {"real", "synthetic"}, "config": {...}} where each row is
        {"metric", "label", "unit", "real", "synthetic", "bicubic",   # the per-set statistic
         "synthetic_distance", "bicubic_distance", "closer"}          # lower distance = closer to real
        and "closer" is "synthetic", "bicubic" or "tie".

Rows (the statistics need no pretrained network, except KID/FID):

* ``kid`` / ``fid``: KID (unbiased, cubic kernel) and FID between Inception features of LR patches,
  when the FID Inception weights resolve (a note otherwise). Inception upsamples each patch to
  299x299, so these compare blurred, magnified patches: they are a coarse check on small inputs.
* ``noise``: noise level per channel in flat regions, in 8-bit levels. The residual of the 3x3
  second-difference operator [[1,-2,1],[-2,4,-2],[1,-2,1]] / 6 (Immerkaer 1996) has std sigma for
  white noise of std sigma and removes constant and linear ramps; it is kept only in the blocks whose
  smoothed gradient is lowest (texture and edges excluded), and sigma = 1.4826 * MAD. Per set: the
  median over images; distance: mean absolute difference over R, G, B.
* ``hf_spectrum``: radially averaged power spectrum of the luma (Hann window, frequency in cycles per
  pixel so sizes can differ), each image's in dB relative to its own mean over the lower band (so
  the contrast of the content cancels and the roll-off remains), averaged over the set; distance:
  mean absolute difference in dB over the upper band (>= `hf_band` cycles/px), where degradations
  differ (noise and blocking add power there, blur removes it).
* ``band_level``: the LR's frequency response in one number (`band_level`): mean log power of the
  luma's radial spectrum over `mid_band` (0.25-0.5 cycles/px) minus that over `low_band` (1/32-1/8),
  in dB, median over images; distance: absolute difference. Blur lowers it, noise and sharpening raise
  it; it separates a strongly blurred LR from bicubic LR by about 3 dB where noise of 4 levels moves it
  by 0.5.
* ``color``: per-channel distribution of pixel values pooled over the set; distance: the 1-D
  Wasserstein distance to real in 8-bit levels, averaged over R, G, B.
* ``blockiness``: JPEG 8x8 blocking of the luma: the mean absolute neighbour difference across the
  strongest 8-pixel grid phase divided by the mean over the other phases (1.0 = no grid; the largest
  10% of differences, real edges, are left out), the mean of the horizontal and vertical ratios; per
  set the median over images. DSGAN's generator is a stride-1
  convolutional network with no positional input, so it is translation-equivariant and cannot place
  blocks on a fixed 8-pixel grid: when the real LR is blocky, a note says that this gap will stay.
* ``jpeg`` (not a row): the JPEG stage of the real and of the synthetic set (`srpipe.io.jpeg`: quality
  from the quantization tables of JPEG files, else from the luma DCT lattice of the decoded pixels),
  as `JpegEstimate.to_json()` each (`jpeg_line` renders them in one line).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

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


# ---------------------------------------------------------------- per-image statistics


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


def _value_histograms(x: torch.Tensor) -> torch.Tensor:
    """(3, 256) counts of 8-bit levels per channel."""
    q = (x.clamp(0, 1) * 255).round().long().reshape(3, -1)
    return torch.stack([torch.bincount(q[i], minlength=256) for i in range(3)]).double()


def _wasserstein_levels(h1: torch.Tensor, h2: torch.Tensor) -> float:
    """Mean over channels of the 1-D Wasserstein distance between histograms, in levels."""
    c1 = torch.cumsum(h1 / h1.sum(1, keepdim=True), 1)
    c2 = torch.cumsum(h2 / h2.sum(1, keepdim=True), 1)
    return float((c1 - c2).abs().sum(1).mean())


# ---------------------------------------------------------------- set statistics


def _centers(cfg: RealismConfig) -> np.ndarray:
    """Centre frequency (cycles/px) of each radial bin."""
    return (np.arange(cfg.spectrum_bins) + 0.5) * 0.5 / cfg.spectrum_bins


@dataclass
class _SetStats:
    noise: np.ndarray  # (3,) median sigma, 8-bit levels
    spectrum: np.ndarray  # (bins,) mean log10 power
    hist: torch.Tensor  # (3, 256)
    blockiness: float
    band: float  # median band_level, dB
    count: int


def _set_stats(images: list[torch.Tensor], cfg: RealismConfig) -> _SetStats:
    noise = np.stack([noise_sigma(im, cfg).numpy() for im in images]) * 255
    with np.errstate(divide="ignore"):
        spec = np.stack([np.log10(radial_spectrum(im, cfg.spectrum_bins).numpy()) for im in images])
    spec = np.where(np.isfinite(spec), spec, np.nan)
    # Relative to each image's own lower band: content contrast cancels, the roll-off that blur,
    # noise and compression shape remains (sets of different photos stay comparable).
    ref = _centers(cfg) < cfg.hf_band
    ref[0] = False  # the lowest ring is mostly image layout
    with warnings.catch_warnings():  # bins no image reaches (tiny images) stay NaN, silently
        warnings.simplefilter("ignore", RuntimeWarning)
        spec = spec - np.nanmean(spec[:, ref], axis=1, keepdims=True)
        spectrum = np.nanmean(spec, axis=0)
    hist = sum(_value_histograms(im) for im in images)
    blk = np.array([blockiness(im) for im in images])
    return _SetStats(
        noise=np.median(noise, axis=0),
        spectrum=spectrum,
        hist=hist,
        blockiness=float(np.nanmedian(blk)) if np.isfinite(blk).any() else float("nan"),
        band=_nanmedian([band_level(im, cfg) for im in images]),
        count=len(images),
    )


def _nanmedian(values: list[float]) -> float:
    a = np.array(values, dtype=float)
    return float(np.nanmedian(a)) if np.isfinite(a).any() else float("nan")


def _load(items: Sequence, what: str) -> list[tuple[str, torch.Tensor]]:
    from srpipe.io.imageio import read_image

    out = []
    for i, it in enumerate(items):
        if isinstance(it, torch.Tensor):
            if it.dim() != 3 or it.shape[0] != 3:
                raise SrpipeError(f"{what} image {i}: expected a (3, H, W) tensor, got {tuple(it.shape)}")
            out.append((f"{what}_{i:05d}", it.detach().float().cpu()))
        else:
            out.append((Path(it).name, read_image(it)[0]))
    if not out:
        raise SrpipeError(f"no {what} images to compare")
    return out


def _row(metric, label, unit, values: dict, dist_s: float | None, dist_b: float | None) -> dict:
    if dist_s is None or dist_b is None or not (math.isfinite(dist_s) and math.isfinite(dist_b)):
        closer = None
    elif math.isclose(dist_s, dist_b, rel_tol=1e-3, abs_tol=1e-9):
        closer = "tie"
    else:
        closer = "synthetic" if dist_s < dist_b else "bicubic"
    return {
        "metric": metric,
        "label": label,
        "unit": unit,
        **values,
        "synthetic_distance": dist_s,
        "bicubic_distance": dist_b,
        "closer": closer,
    }


def _fmt3(v: np.ndarray) -> list[float]:
    return [round(float(a), 4) for a in v]


def degradation_report(
    real: Sequence,
    synthetic: Sequence,
    hr: Sequence,
    scale: int,
    *,
    cfg: RealismConfig = RealismConfig(),
    weights_dir=None,
    device="cpu",
    pairs: dict | None = None,
) -> dict:
    """Distances of synthetic LR and of bicubic LR (of `hr`) to real LR; see the module docstring.

    `pairs`: the pairs.json of the folder the synthetic LR comes from (make-pairs'), so the advice in
    the notes only suggests what was not done (`advice`); None when unknown.
    """
    from srpipe.io.resize import bicubic_down, mod_crop

    if scale < 1:
        raise SrpipeError(f"scale must be >= 1, got {scale}")
    sets = {"real": _load(real, "real"), "synthetic": _load(synthetic, "synthetic")}
    hr_imgs = _load(hr, "hr")
    sets["bicubic"] = [(n, bicubic_down(mod_crop(im, scale).unsqueeze(0), scale)[0]) for n, im in hr_imgs]
    for name, items in sets.items():
        for n, im in items:
            if min(im.shape[-2:]) < 16:
                raise SrpipeError(f"{name} image {n} is {im.shape[-1]}x{im.shape[-2]}; at least 16x16 is needed")
    st = {k: _set_stats([im for _, im in v], cfg) for k, v in sets.items()}
    notes: list[str] = []
    rows: list[dict] = []

    if cfg.inception:
        rows += _inception_rows(sets, cfg, weights_dir, device, notes)

    n = {k: st[k].noise for k in st}
    rows.append(
        _row(
            "noise",
            "noise sigma in flat regions (R, G, B)",
            "8-bit levels",
            {k: _fmt3(v) for k, v in n.items()},
            float(np.abs(n["synthetic"] - n["real"]).mean()),
            float(np.abs(n["bicubic"] - n["real"]).mean()),
        )
    )

    band = _centers(cfg) >= cfg.hf_band

    def hf_dist(k):
        d = np.abs(st[k].spectrum[band] - st["real"].spectrum[band]) * 10  # log10 power -> dB
        return float(np.nanmean(d)) if np.isfinite(d).any() else float("nan")

    rows.append(
        _row(
            "hf_spectrum",
            f"power spectrum {cfg.hf_band:g}-0.5 cycles/px, relative to lower band",
            "dB",
            {k: round(float(np.nanmean(st[k].spectrum[band]) * 10), 3) for k in st},
            hf_dist("synthetic"),
            hf_dist("bicubic"),
        )
    )

    band_row = {k: st[k].band for k in st}
    rows.append(
        _row(
            "band_level",
            f"mid/low band power ({cfg.mid_band[0]:g}-{cfg.mid_band[1]:g} vs {cfg.low_band[0]:.4g}-{cfg.low_band[1]:g} cycles/px)",
            "dB",
            {k: round(v, 3) for k, v in band_row.items()},
            abs(band_row["synthetic"] - band_row["real"]),
            abs(band_row["bicubic"] - band_row["real"]),
        )
    )

    rows.append(
        _row(
            "color",
            "colour distribution, W1 per channel (values: R, G, B means)",
            "8-bit levels",
            {k: _fmt3((torch.arange(256, dtype=torch.float64) * st[k].hist).sum(1) / st[k].hist.sum(1)) for k in st},
            _wasserstein_levels(st["synthetic"].hist, st["real"].hist),
            _wasserstein_levels(st["bicubic"].hist, st["real"].hist),
        )
    )

    b = {k: st[k].blockiness for k in st}
    rows.append(
        _row(
            "blockiness",
            "JPEG 8x8 grid strength (1 = none)",
            "ratio",
            {k: round(v, 4) for k, v in b.items()},
            abs(b["synthetic"] - b["real"]),
            abs(b["bicubic"] - b["real"]),
        )
    )
    jpeg_stage = {k: _jpeg_estimate(v) for k, v in (("real", real), ("synthetic", synthetic))}
    notes += advice(b, pairs)
    return {
        "scale": scale,
        "counts": {k: len(v) for k, v in sets.items()},
        "rows": rows,
        "notes": notes,
        "jpeg": {k: v.to_json() for k, v in jpeg_stage.items()},
        "config": asdict(cfg),
    }


def advice(blockiness: dict, pairs: dict | None) -> list[str]:
    """What to do about a JPEG-blocked real LR, given what made the synthetic LR (`pairs`: its pairs.json).

    Nothing is suggested that the pairs already had: a JPEG stage applied by make-pairs (its
    `jpeg.qualities`) or the blind recipe's own JPEG. DSGAN's grid limitation is said for DSGAN (or
    unknown) pairs only: pdm's forward ends in the JPEG stage itself.
    """
    from srpipe.io.jpeg import summarize

    b = blockiness["real"]
    if not b > BLOCKY:
        return []
    seen = f"the real LR shows JPEG 8x8 blocking (blockiness {b:.2f})"
    method = (pairs or {}).get("method") or ("dsgan" if pairs and "generator" in pairs else None)
    jpeg = (pairs or {}).get("jpeg") or {}
    used = [q for q in (jpeg.get("qualities") or {}).values() if q is not None]
    if method == "blind":
        return [f"{seen}; the blind recipe JPEG-compresses every synthetic LR image (quality 30-95) already"]
    if used:
        return [f"{seen}; make-pairs JPEG-compressed {len(used)} synthetic LR image(s), quality {summarize(used)}"]
    grid = (
        ": a generator without a grid (DSGAN's stride-1 convolutions are translation-equivariant) cannot make "
        "blocks on a fixed 8-pixel grid, so this gap stays until the LR is JPEG-compressed"
        if method in (None, "dsgan")
        else ""
    )
    if pairs is None:
        how = (
            "make-pairs --jpeg auto (its default) compresses the synthetic LR at the qualities estimated from the "
            "real LR; if these LR images are make-pairs output, pass their folder's pairs.json to see what it applied"
        )
    elif (jpeg.get("spec") or {}).get("mode") == "off":
        how = 'make-pairs ran with --jpeg off: use --jpeg auto (pipeline: [pairs] jpeg = "auto") so SR learns to remove them'
    elif method == "bicubic":
        how = "bicubic pairs have no JPEG stage: SR trained on them never sees blocks"
    else:
        how = "make-pairs applied no JPEG stage (its model stored no JPEG estimate): pass --jpeg Q or QMIN:QMAX"
    return [f"{seen}{grid}; {how}"]


def _jpeg_estimate(items: Sequence):
    """JPEG estimate of a set given as paths (tables of JPEG files) or tensors (decoded pixels)."""
    from srpipe.io.jpeg import estimate_folder, estimate_tensors

    if all(isinstance(it, torch.Tensor) for it in items):
        return estimate_tensors(list(items))
    tensors = [it for it in items if isinstance(it, torch.Tensor)]
    paths = [Path(it) for it in items if not isinstance(it, torch.Tensor)]
    return estimate_folder(paths) if not tensors else estimate_tensors(tensors)


def _inception_rows(sets: dict, cfg: RealismConfig, weights_dir, device, notes: list[str]) -> list[dict]:
    from srpipe.eval import fid
    from srpipe.engine.weights import MissingWeightsError

    smallest = min(min(im.shape[-2:]) for items in sets.values() for _, im in items)
    p = min(cfg.patch_size, smallest // 8 * 8)
    spec = fid.FeatureSpec(dims=cfg.dims, patches=cfg.patches, patch_size=p, patch_mode="random", seed=cfg.seed)
    try:
        model = fid.inception(cfg.dims, weights_dir=weights_dir, device=device)
    except MissingWeightsError as e:
        notes.append(f"KID/FID skipped: {e}")
        return []
    feats = {k: fid.tensor_features(v, spec, model=model, device=device) for k, v in sets.items()}
    notes.append(
        f"KID/FID use {cfg.patches} random {p}x{p} LR patches per image, which Inception upsamples to 299x299: "
        "they compare magnified patches and are coarse on small inputs"
    )
    w = fid.small_sample_warning(len(feats["real"]), cfg.dims, "the real LR patches")
    if w:
        notes.append(w)
    kid = {
        k: fid.kid(feats[k], feats["real"], subsets=cfg.kid_subsets, subset_size=cfg.kid_subset_size, seed=cfg.seed)
        for k in ("synthetic", "bicubic")
    }
    fids = {}
    for k in ("synthetic", "bicubic"):
        value, fnotes = fid.frechet_distance(*fid.stats(feats[k]), *fid.stats(feats["real"]))
        fids[k] = value
        notes.extend(n for n in fnotes if n not in notes)
    counts = {k: len(v) for k, v in feats.items()}
    return [
        _row(
            "kid",
            f"KID on {p}x{p} patches (mean; std over subsets)",
            "",
            {
                "real": 0.0,
                "synthetic": kid["synthetic"][0],
                "bicubic": kid["bicubic"][0],
                "std": {"synthetic": kid["synthetic"][1], "bicubic": kid["bicubic"][1]},
                "patches": counts,
            },
            kid["synthetic"][0],
            kid["bicubic"][0],
        ),
        _row(
            "fid",
            f"FID on {p}x{p} patches",
            "",
            {"real": 0.0, "synthetic": fids["synthetic"], "bicubic": fids["bicubic"], "patches": counts},
            fids["synthetic"],
            fids["bicubic"],
        ),
    ]


# ---------------------------------------------------------------- folders and rendering


def infer_scale(synthetic: Sequence[Path], hr: Sequence[Path], *, checks: int = 3) -> int | None:
    """The HR/LR factor from same-named synthetic and HR files (make-pairs keeps names), or None.

    Up to `checks` pairs must agree on one integer factor > 1 in both dimensions (the HR image may
    carry up to factor-1 extra pixels that a mod-crop removed).
    """
    from PIL import Image

    hr_by_stem = {Path(p).stem: Path(p) for p in hr}
    found: set[int] = set()
    seen = 0
    for p in synthetic:
        q = hr_by_stem.get(Path(p).stem)
        if q is None:
            continue
        try:
            with Image.open(p) as a, Image.open(q) as b:
                (lw, lh), (hw, hh) = a.size, b.size
        except OSError:
            return None
        f = hw // lw if lw else 0
        if f < 2 or hh // lh != f or hw - f * lw >= f or hh - f * lh >= f:
            return None
        found.add(f)
        seen += 1
        if seen >= checks:
            break
    return found.pop() if len(found) == 1 else None


def folder_report(
    real_dir,
    synthetic_dir,
    hr_dir,
    *,
    scale: int | None = None,
    cfg: RealismConfig = RealismConfig(),
    weights_dir=None,
    device="cpu",
) -> dict:
    """`degradation_report` on three folders (top-level images); `scale` inferred from names if None."""
    from srpipe.io.imageio import list_images

    real, synthetic, hr = list_images(real_dir), list_images(synthetic_dir), list_images(hr_dir)
    for name, files, d in (("real", real, real_dir), ("synthetic", synthetic, synthetic_dir), ("HR", hr, hr_dir)):
        if not files:
            raise SrpipeError(f"no images in the {name} folder {d}")
    if scale is None:
        scale = infer_scale(synthetic, hr)
        if scale is None:
            raise SrpipeError(
                f"cannot infer the scale: no same-named images in {synthetic_dir} and {hr_dir} with an integer size "
                "ratio; pass --scale"
            )
    report = degradation_report(
        real, synthetic, hr, scale, cfg=cfg, weights_dir=weights_dir, device=device, pairs=pairs_manifest(synthetic_dir)
    )
    report["folders"] = {"real": str(real_dir), "synthetic": str(synthetic_dir), "hr": str(hr_dir)}
    return report


def pairs_manifest(lr_dir) -> dict | None:
    """The pairs.json of a make-pairs output whose lr/ folder is `lr_dir` (None if there is none)."""
    import json

    p = Path(lr_dir).parent / "pairs.json"
    try:
        m = json.loads(p.read_text()) if Path(lr_dir).name == "lr" else None
    except (OSError, json.JSONDecodeError):
        return None
    return m if isinstance(m, dict) else None


def _num(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, list):
        return " ".join(_num(a) for a in v)
    if isinstance(v, float):
        if not math.isfinite(v):
            return str(v)
        return f"{v:.4g}"
    return str(v)


def jpeg_line(report: dict) -> str | None:
    """'JPEG stage: real LR: ...; synthetic: ...' from a report's `jpeg` entry (None for older reports)."""
    from srpipe.io.jpeg import JpegEstimate

    if not report.get("jpeg"):
        return None
    j = {k: JpegEstimate.from_json(v).describe() for k, v in report["jpeg"].items()}
    return f"JPEG stage: real LR: {j['real']}; synthetic: {j['synthetic']}"


def report_markdown(report: dict) -> str:
    """The report as a Markdown table (what `degrade-train` stores with its run)."""
    lines = [
        f"Degradation realism (x{report['scale']}; images: real {report['counts']['real']}, "
        f"synthetic {report['counts']['synthetic']}, bicubic {report['counts']['bicubic']}). "
        "Distance to real: lower is closer.",
        "",
        "| metric | synthetic | bicubic | closer | real | synthetic value | bicubic value | unit |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in report["rows"]:
        lines.append(
            f"| {r['label']} | {_num(r['synthetic_distance'])} | {_num(r['bicubic_distance'])} | {r['closer'] or '-'} "
            f"| {_num(r['real'])} | {_num(r['synthetic'])} | {_num(r['bicubic'])} | {r['unit']} |"
        )
    line = jpeg_line(report)
    if report["notes"] or line:
        lines.append("")
        lines += [f"- {n}" for n in ([line] if line else []) + report["notes"]]
    return "\n".join(lines) + "\n"
