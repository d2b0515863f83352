"""The JPEG quality of one image: from the quantization tables of a JPEG file, or from the
quantisation lattice of pixels decoded from a JPEG and stored losslessly.

Estimation, per file:

* **JPEG files**: the quantization tables in the file (`PIL.Image.quantization`) are fitted with the
  IJG quality scaling (libjpeg's `jpeg_quality_scaling`: scale = 5000/q for q < 50, else 200 - 2q;
  table = clip((base * scale + 50) // 100, 1, 255), bases of the JPEG standard, Annex K). The fit is
  least squares over the 64 (luma) + 64 (chroma) entries in the log domain (a step's effect on the
  image is relative to its size); q = 1..100 is searched. Tables that no IJG quality reproduces
  (relative rms residual above `IJG_RESIDUAL`: other encoders, camera firmware) still give the
  *equivalent* IJG quality, flagged as such.
* **Other files** (PNG...: possibly a JPEG decoded and stored losslessly): the quantisation lattice
  of the luma DCT. For an image decoded from a JPEG at quality Q, the 8x8 block DCT coefficients of
  its luma sit at integer multiples of Q's luma table, up to the decoder's rounding (about 0.35
  8-bit levels). For each q the normalised residual |c/T_q - round(c/T_q)| (0..0.5, mean 0.25 when
  the coefficients are unrelated to T_q) is averaged over the coefficients that T_q does not quantise
  to zero; the best q is the minimum. A never-compressed image has no lattice: its best residual
  stays near 0.25, and above `LATTICE_THRESHOLD` the answer is None (see there for the measurements).
  Blocks with clipped pixels (0 or 255 in any channel) are left out: clipping breaks the lattice.
  The grid offset (a crop moves it) is searched over all 64 positions (see `lattice_residuals`).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from srpipe.errors import SrpipeError

# JPEG standard (ITU-T T.81, Annex K) example tables, natural (row-major) order, as libjpeg uses them.
BASE_LUMA = np.array(
    [
        16,
        11,
        10,
        16,
        24,
        40,
        51,
        61,
        12,
        12,
        14,
        19,
        26,
        58,
        60,
        55,
        14,
        13,
        16,
        24,
        40,
        57,
        69,
        56,
        14,
        17,
        22,
        29,
        51,
        87,
        80,
        62,
        18,
        22,
        37,
        56,
        68,
        109,
        103,
        77,
        24,
        35,
        55,
        64,
        81,
        104,
        113,
        92,
        49,
        64,
        78,
        87,
        103,
        121,
        120,
        101,
        72,
        92,
        95,
        98,
        112,
        100,
        103,
        99,
    ],
    dtype=np.int64,
)
BASE_CHROMA = np.array(
    [
        17,
        18,
        24,
        47,
        99,
        99,
        99,
        99,
        18,
        21,
        26,
        66,
        99,
        99,
        99,
        99,
        24,
        26,
        56,
        99,
        99,
        99,
        99,
        99,
        47,
        66,
        99,
        99,
        99,
        99,
        99,
        99,
        *([99] * 32),
    ],
    dtype=np.int64,
)

# Relative rms (log domain) residual of the table fit above which a file's tables are not IJG-scaled.
# IJG tables fit exactly (0); a table scaled off by one step in a few entries stays below 0.05.
IJG_RESIDUAL = 0.05
# Lattice residual (see the module docstring; 0.25 = no lattice) at or above which an image counts as
# never JPEG-compressed. Measured on 256x256 crops of 8-bit photos (McMaster, and their bicubic x1/4
# downscales): clean 0.236-0.253; the same crops JPEG-decoded at q10-q75 0.004-0.041, q90 0.05-0.09,
# q95 0.09-0.15, q98 0.16-0.19 (every q10-q95 recovered exactly, also after a crop). 0.20 keeps a margin
# of 0.035 to clean images (the mean of >= 200 uniform residuals has std <= 0.01); q >= 98 may read
# as "none", which is visually lossless anyway.
LATTICE_THRESHOLD = 0.20
FIT_BLOCKS = 2048  # blocks sampled for the fit (the mean residual's std stays below 0.002)
SEARCH_BLOCKS = 256  # blocks sampled per offset while searching the grid offset
MIN_COEFFS = 200  # fewer informative coefficients than this for a q: too few to judge that q
# ---------------------------------------------------------------- quantization tables


def ijg_table(base: np.ndarray, quality: int) -> np.ndarray:
    """libjpeg's table for `quality` (1..100) from a base table, baseline-clipped to 1..255."""
    q = min(max(int(quality), 1), 100)
    scale = 5000 // q if q < 50 else 200 - 2 * q
    return np.clip((base * scale + 50) // 100, 1, 255)


_LUMA_TABLES = np.stack([ijg_table(BASE_LUMA, q) for q in range(1, 101)])  # (100, 64)
_LUMA_TABLES_F = _LUMA_TABLES.astype(np.float32)
_CHROMA_TABLES = np.stack([ijg_table(BASE_CHROMA, q) for q in range(1, 101)])


def _tables_list(qtables) -> list[np.ndarray]:
    items = [qtables[k] for k in sorted(qtables)] if isinstance(qtables, dict) else list(qtables)
    out = [np.asarray(t, dtype=np.float64).reshape(-1) for t in items]
    if not out or any(t.size != 64 for t in out):
        raise SrpipeError("quantization tables must be 64 entries each")
    return out


def fit_qtables(qtables: dict | list) -> tuple[int, float]:
    """(best IJG quality 1..100, relative rms residual) of a file's tables (luma, then chroma if any).

    Least squares in the log domain; among equal fits the lowest quality (q = 1..3 all clip to 255).
    """
    tabs = _tables_list(qtables)
    err = (np.log(_LUMA_TABLES) - np.log(tabs[0])) ** 2
    n = 64
    if len(tabs) > 1:
        err = np.concatenate([err, (np.log(_CHROMA_TABLES) - np.log(tabs[1])) ** 2], axis=1)
        n = 128
    rms = np.sqrt(err.sum(1) / n)
    best = int(np.argmin(rms))
    return best + 1, float(rms[best])


def quality_from_qtables(qtables: dict | list) -> int | None:
    """The IJG quality whose tables these are; None when no IJG quality reproduces them (see `fit_qtables`)."""
    q, residual = fit_qtables(qtables)
    return q if residual <= IJG_RESIDUAL else None


# ---------------------------------------------------------------- decoded pixels


def _dct_matrix() -> np.ndarray:
    k = np.arange(8)
    m = np.cos((2 * k[None, :] + 1) * k[:, None] * np.pi / 16) * np.sqrt(2 / 8)
    m[0] /= np.sqrt(2)
    return m  # orthonormal: the JPEG standard's FDCT, steps in 8-bit levels


_DCT = _dct_matrix()


def lattice_residuals(img: torch.Tensor) -> np.ndarray:
    """(100,) mean normalised lattice residual of the luma DCT for q = 1..100 (NaN: too few coefficients).

    The block grid's offset is unknown when the image was cropped. At the right offset the
    coefficients of a decoded JPEG are integer multiples of integer steps, so they sit near integers
    (mean distance to the nearest integer well below the 0.25 of unrelated values); the offset with the
    lowest mean distance is used.
    """
    if img.dim() != 3 or img.shape[0] != 3:
        raise SrpipeError(f"expected a (3, H, W) image, got {tuple(img.shape)}")
    rgb = np.round(img.detach().float().clamp(0, 1).cpu().numpy() * 255)  # the stored 8-bit values
    y = 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2] - 128.0  # JFIF full-range luma, level-shifted
    clipped = ((rgb == 0) | (rgb == 255)).any(0)
    scores = {}
    for oy in range(8):
        for ox in range(8):
            coef = _coefficients(y[oy:, ox:], clipped[oy:, ox:], max_blocks=SEARCH_BLOCKS)
            scores[(oy, ox)] = float(np.abs(coef - np.round(coef)).mean()) if coef.size else math.inf
    oy, ox = min(scores, key=lambda k: (scores[k], k))  # ties (flat images): the uncropped grid
    # Unclipped blocks only, and all blocks (saturated images leave few unclipped ones): the better fit.
    best = np.full(100, np.nan)
    c = clipped[oy:, ox:]
    hb, wb = c.shape[0] // 8, c.shape[1] // 8
    share = c[: hb * 8, : wb * 8].reshape(hb, 8, wb, 8).any(axis=(1, 3)).mean() if hb and wb else 0.0
    for drop in (True, False) if share > 0.5 else (True,):  # mostly clipped: also try all blocks
        coef = _coefficients(y[oy:, ox:], c if drop else np.zeros_like(c), max_blocks=FIT_BLOCKS).astype(np.float32)
        out = np.full(100, np.nan)
        for i in range(100):
            r = coef / _LUMA_TABLES_F[i, 1:]  # AC steps (see _coefficients)
            live = np.abs(r) >= 0.5  # coefficients this table keeps: zeros fit every table
            if live.sum() < MIN_COEFFS:
                continue
            out[i] = float(np.abs(r[live] - np.round(r[live])).mean())
        if np.isfinite(out).any() and not np.nanmin(out) >= np.nanmin(np.append(best, np.inf)):
            best = out
    return best


def _coefficients(y: np.ndarray, clipped: np.ndarray, max_blocks: int = 0) -> np.ndarray:
    """(blocks, 63) orthonormal DCT AC coefficients of the 8x8 blocks of `y` from its top-left corner.

    DC is left out: it is 8x the block mean, so at low qualities (steps up to 255) it spans only a few
    steps and block means that cluster (dark or smooth images) sit near the lattice by chance. A bicubic
    x1/4 downscale of a RealSR camera LR read as quality 1 that way (residual 0.175, DC alone); without
    DC it reads 0.247 (clean) and decoded JPEGs q10-q95 are still recovered.
    """
    hb, wb = y.shape[0] // 8, y.shape[1] // 8
    if hb == 0 or wb == 0:
        return np.zeros((0, 63))
    blocks = y[: hb * 8, : wb * 8].reshape(hb, 8, wb, 8).transpose(0, 2, 1, 3).reshape(-1, 8, 8)
    bad = clipped[: hb * 8, : wb * 8].reshape(hb, 8, wb, 8).any(axis=(1, 3)).reshape(-1)
    if (~bad).sum() >= 8:  # enough unclipped blocks to judge on their own
        blocks = blocks[~bad]
    if max_blocks and len(blocks) > max_blocks:  # evenly spread sample, deterministic
        blocks = blocks[np.linspace(0, len(blocks) - 1, max_blocks).astype(np.int64)]
    return (_DCT @ blocks @ _DCT.T).reshape(-1, 64)[:, 1:]


def quality_from_pixels(img: torch.Tensor) -> int | None:
    """The JPEG quality an image (3, H, W) in [0, 1] was decoded from; None when it shows no JPEG lattice."""
    res = lattice_residuals(img)
    if not np.isfinite(res).any():
        return None
    best = int(np.nanargmin(res))
    return best + 1 if res[best] < LATTICE_THRESHOLD else None
