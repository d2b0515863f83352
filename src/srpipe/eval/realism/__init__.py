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

Modules: `measures` (the per-image statistics and `RealismConfig`), `sets` (set statistics, the rows,
KID/FID, a set's JPEG stage), `text` (the advice, `jpeg_line`, `report_markdown`); this one loads
the three sets and assembles the report, from tensors, paths or folders.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import torch

from srpipe.errors import SrpipeError
from srpipe.eval.realism.measures import RealismConfig
from srpipe.eval.realism.sets import inception_rows, jpeg_estimate, set_stats, statistic_rows
from srpipe.eval.realism.text import advice


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


def _load_sets(real: Sequence, synthetic: Sequence, hr: Sequence, scale: int) -> dict[str, list]:
    """{"real", "synthetic", "bicubic"}: (name, image) lists; bicubic is the mod-cropped HR downscaled."""
    from srpipe.io.resize import bicubic_down, mod_crop

    sets = {"real": _load(real, "real"), "synthetic": _load(synthetic, "synthetic")}
    hr_imgs = _load(hr, "hr")
    sets["bicubic"] = [(n, bicubic_down(mod_crop(im, scale).unsqueeze(0), scale)[0]) for n, im in hr_imgs]
    for name, items in sets.items():
        for n, im in items:
            if min(im.shape[-2:]) < 16:
                raise SrpipeError(f"{name} image {n} is {im.shape[-1]}x{im.shape[-2]}; at least 16x16 is needed")
    return sets


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
    if scale < 1:
        raise SrpipeError(f"scale must be >= 1, got {scale}")
    sets = _load_sets(real, synthetic, hr, scale)
    st = {k: set_stats([im for _, im in v], cfg) for k, v in sets.items()}
    notes: list[str] = []
    rows: list[dict] = []
    if cfg.inception:
        rows += inception_rows(sets, cfg, weights_dir, device, notes)
    rows += statistic_rows(st, cfg)
    jpeg_stage = {k: jpeg_estimate(v) for k, v in (("real", real), ("synthetic", synthetic))}
    notes += advice({k: st[k].blockiness for k in st}, pairs)
    return {
        "scale": scale,
        "counts": {k: len(v) for k, v in sets.items()},
        "rows": rows,
        "notes": notes,
        "jpeg": {k: v.to_json() for k, v in jpeg_stage.items()},
        "config": asdict(cfg),
    }


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


def pairs_manifest(lq_dir) -> dict | None:
    """The pairs.json of a make-pairs output whose lr/ folder is `lq_dir` (None if there is none)."""
    import json

    from srpipe.io.pair_folder import LQ_DIR, PAIRS

    p = Path(lq_dir).parent / PAIRS
    try:
        m = json.loads(p.read_text()) if Path(lq_dir).name == LQ_DIR else None
    except (OSError, json.JSONDecodeError):
        return None
    return m if isinstance(m, dict) else None
