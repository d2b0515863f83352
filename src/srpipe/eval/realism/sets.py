"""Set statistics of the realism report and its rows: one row per statistic, real vs synthetic vs bicubic.

`set_stats` reduces a set of images to the per-set values of `srpipe.eval.realism.measures`;
`statistic_rows` turns the three sets' values into the report's rows (each with its distances to
real and which set is closer); `inception_rows` adds KID and FID on LR patches; `jpeg_estimate`
is the JPEG stage of a set.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from srpipe.eval.realism.measures import (
    RealismConfig,
    band_level,
    blockiness,
    noise_sigma,
    radial_spectrum,
    value_histograms,
    wasserstein_levels,
)


def _centers(cfg: RealismConfig) -> np.ndarray:
    """Centre frequency (cycles/px) of each radial bin."""
    return (np.arange(cfg.spectrum_bins) + 0.5) * 0.5 / cfg.spectrum_bins


@dataclass
class SetStats:
    noise: np.ndarray  # (3,) median sigma, 8-bit levels
    spectrum: np.ndarray  # (bins,) mean log10 power
    hist: torch.Tensor  # (3, 256)
    blockiness: float
    band: float  # median band_level, dB
    count: int


def set_stats(images: list[torch.Tensor], cfg: RealismConfig) -> SetStats:
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
    hist = sum(value_histograms(im) for im in images)
    blk = np.array([blockiness(im) for im in images])
    return SetStats(
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


def row(metric, label, unit, values: dict, dist_s: float | None, dist_b: float | None) -> dict:
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


def statistic_rows(st: dict[str, SetStats], cfg: RealismConfig) -> list[dict]:
    """The rows of the statistics that need no network, from the real, synthetic and bicubic sets' stats."""
    return [_noise_row(st), _spectrum_row(st, cfg), _band_row(st, cfg), _color_row(st), _blockiness_row(st)]


def _noise_row(st: dict[str, SetStats]) -> dict:
    n = {k: st[k].noise for k in st}
    return row(
        "noise",
        "noise sigma in flat regions (R, G, B)",
        "8-bit levels",
        {k: _fmt3(v) for k, v in n.items()},
        float(np.abs(n["synthetic"] - n["real"]).mean()),
        float(np.abs(n["bicubic"] - n["real"]).mean()),
    )


def _hf_distance(spectrum: np.ndarray, real: np.ndarray, band: np.ndarray) -> float:
    d = np.abs(spectrum[band] - real[band]) * 10  # log10 power -> dB
    return float(np.nanmean(d)) if np.isfinite(d).any() else float("nan")


def _spectrum_row(st: dict[str, SetStats], cfg: RealismConfig) -> dict:
    band = _centers(cfg) >= cfg.hf_band
    real = st["real"].spectrum
    return row(
        "hf_spectrum",
        f"power spectrum {cfg.hf_band:g}-0.5 cycles/px, relative to lower band",
        "dB",
        {k: round(float(np.nanmean(st[k].spectrum[band]) * 10), 3) for k in st},
        _hf_distance(st["synthetic"].spectrum, real, band),
        _hf_distance(st["bicubic"].spectrum, real, band),
    )


def _band_row(st: dict[str, SetStats], cfg: RealismConfig) -> dict:
    band_row = {k: st[k].band for k in st}
    return row(
        "band_level",
        f"mid/low band power ({cfg.mid_band[0]:g}-{cfg.mid_band[1]:g} vs {cfg.low_band[0]:.4g}-{cfg.low_band[1]:g} cycles/px)",
        "dB",
        {k: round(v, 3) for k, v in band_row.items()},
        abs(band_row["synthetic"] - band_row["real"]),
        abs(band_row["bicubic"] - band_row["real"]),
    )


def _color_row(st: dict[str, SetStats]) -> dict:
    return row(
        "color",
        "colour distribution, W1 per channel (values: R, G, B means)",
        "8-bit levels",
        {k: _fmt3((torch.arange(256, dtype=torch.float64) * st[k].hist).sum(1) / st[k].hist.sum(1)) for k in st},
        wasserstein_levels(st["synthetic"].hist, st["real"].hist),
        wasserstein_levels(st["bicubic"].hist, st["real"].hist),
    )


def _blockiness_row(st: dict[str, SetStats]) -> dict:
    b = {k: st[k].blockiness for k in st}
    return row(
        "blockiness",
        "JPEG 8x8 grid strength (1 = none)",
        "ratio",
        {k: round(v, 4) for k, v in b.items()},
        abs(b["synthetic"] - b["real"]),
        abs(b["bicubic"] - b["real"]),
    )


def jpeg_estimate(items: Sequence):
    """JPEG estimate of a set given as paths (tables of JPEG files) or tensors (decoded pixels)."""
    from srpipe.io.jpeg import estimate_folder, estimate_tensors

    if all(isinstance(it, torch.Tensor) for it in items):
        return estimate_tensors(list(items))
    tensors = [it for it in items if isinstance(it, torch.Tensor)]
    paths = [Path(it) for it in items if not isinstance(it, torch.Tensor)]
    return estimate_folder(paths) if not tensors else estimate_tensors(tensors)


def inception_rows(sets: dict, cfg: RealismConfig, weights_dir, device, notes: list[str]) -> list[dict]:
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
        row(
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
        row(
            "fid",
            f"FID on {p}x{p} patches",
            "",
            {"real": 0.0, "synthetic": fids["synthetic"], "bicubic": fids["bicubic"], "patches": counts},
            fids["synthetic"],
            fids["bicubic"],
        ),
    ]
