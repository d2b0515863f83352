"""The report's pictures from a run's images: sample grids, side-by-side crops, overviews.

Every picture is a PNG ``data:`` URI, enlarged with nearest neighbour so pixels stay visible. The
compared crop is the window with the most gradient energy in the reference image, where SR models
differ most (flat regions look alike for every model).
"""

from __future__ import annotations

import base64
import io
import re
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from srpipe.degrade import contract as degrade_contract
from srpipe.io.pair_folder import GT_DIR, LQ_DIR
from srpipe.pipeline.layout import BICUBIC, HELD_OUT, REAL
from srpipe.pipeline.report.models import baseline_kind, model_label, model_order, real_order
from srpipe.upscale import contract as sr_contract

MAX_TEST_IMAGES = 8  # comparisons shown; the metric tables always cover every image
CROP_HR = 64  # side of the compared crop in HR pixels (smaller images: half their short side)
CROP_DISPLAY = 128  # the crop is enlarged by the largest integer factor that keeps it within this many px
THUMB = 160  # longest side of the overview image that marks the crop (7 panels + overview fit one row)
GRID_WIDTH = 480  # sample grids are enlarged by an integer factor up to about this width


def png_uri(img: Image.Image) -> str:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _open_rgb(path: Path) -> Image.Image | None:
    try:
        with Image.open(path) as im:
            return im.convert("RGB")
    except (OSError, ValueError):
        return None


def _enlarge(img: Image.Image, factor: int) -> Image.Image:
    return img if factor <= 1 else img.resize((img.width * factor, img.height * factor), Image.NEAREST)


def detail_window(gray: np.ndarray, size: int, step: int) -> tuple[int, int]:
    """Top-left (y, x) of the `size` x `size` window with the most gradient energy, on a `step` grid.

    `step` is the SR scale, so the window maps to whole LR pixels. Sums come from an integral image.
    """
    g = gray.astype(np.float64)
    e = np.abs(np.diff(g, axis=0, append=g[-1:])) + np.abs(np.diff(g, axis=1, append=g[:, -1:]))
    ii = np.pad(e.cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    ys = np.arange(0, g.shape[0] - size + 1, step)[:, None]
    xs = np.arange(0, g.shape[1] - size + 1, step)[None, :]
    sums = ii[ys + size, xs + size] - ii[ys, xs + size] - ii[ys + size, xs] + ii[ys, xs]
    if sums.size == 0:  # image smaller than the window
        return 0, 0
    iy, ix = np.unravel_index(int(np.argmax(sums)), sums.shape)
    return int(ys[iy, 0]), int(xs[0, ix])


def sample_grids(entries: dict) -> list[dict]:
    """The first and last DSGAN grids, the last grid of each SR phase."""
    found = []
    if "degrade" in entries:
        files = sorted((entries["degrade"] / degrade_contract.SAMPLES).glob(degrade_contract.SAMPLE_GLOB))
        picks = files[:1] + files[-1:] if len(files) > 1 else files
        for f in picks:
            found.append(("DSGAN", f, ["bicubic LR", "synthetic LR", "real LR"]))
    for stage, phase in (("sr_psnr", "psnr"), ("sr_gan", "gan")):
        if stage in entries:
            files = sorted((entries[stage] / sr_contract.SAMPLES).glob(sr_contract.sample_glob(phase)))
            if files:
                found.append((f"ESRGAN {phase.upper()} phase", files[-1], ["bicubic", "SR", "HR"]))
    out = []
    for what, f, columns in found:
        img = _open_rgb(f)
        if img is None:
            continue
        step = re.search(r"(\d+)$", f.stem)
        factor = max(1, min(8, GRID_WIDTH // max(1, img.width)))
        out.append(
            {
                "title": f"{what}, step {int(step.group(1)) if step else '?'}",
                "columns": columns,
                "uri": png_uri(_enlarge(img, factor)),
                "file": f.name,
                "factor": factor,
                "width": img.width * factor,
            }
        )
    return out


def comparisons(entries: dict, metrics: dict | None, scale: int | None, notes: list[str]) -> tuple[list[dict], str]:
    if "upscale" not in entries:
        return [], "no upscale stage in this run ([sr] enabled = false, or no [inputs] test_hr)"
    up = entries["upscale"]
    models = model_order(p.name for p in up.iterdir() if p.is_dir() and p.name != REAL)
    pairs = entries.get("test_pairs")
    names = sorted({p.stem for m in models for p in (up / m).glob("*.png")})
    if not names:
        return [], f"the upscale entry {up} holds no images"
    per_image = {m: {r["name"]: r for r in rows} for m, rows in ((metrics or {}).get("per_image") or {}).items()}
    if len(names) > MAX_TEST_IMAGES:
        notes.append(f"comparisons show the first {MAX_TEST_IMAGES} of {len(names)} test images")
    out = []
    for name in names[:MAX_TEST_IMAGES]:
        hr = _open_rgb(pairs / GT_DIR / f"{name}.png") if pairs else None
        lr = _open_rgb(pairs / LQ_DIR / f"{name}.png") if pairs else None
        sr = {m: _open_rgb(up / m / f"{name}.png") for m in models}
        ref = hr if hr is not None else next((im for im in sr.values() if im is not None), None)
        if ref is None:
            continue
        s = scale or (round(ref.width / lr.width) if lr else 1)
        c = max(s, min(CROP_HR, min(ref.size) // 2) // s * s)
        y, x = detail_window(np.asarray(ref.convert("L")), c, s)
        zoom = max(1, CROP_DISPLAY // c)
        panels = []
        if lr is not None:
            lr_crop = lr.crop((x // s, y // s, (x + c) // s, (y + c) // s))
            panels.append(
                {"label": "LR input", "uri": png_uri(_enlarge(lr_crop, zoom * s)), "psnr": None, "lpips": None}
            )
        for m in models:
            if sr[m] is None:
                continue
            row = per_image.get(m, {}).get(name, {})
            panels.append(
                {
                    "label": model_label(m),
                    "uri": png_uri(_enlarge(sr[m].crop((x, y, x + c, y + c)), zoom)),
                    "psnr": row.get("psnr_y"),
                    "lpips": row.get("lpips"),
                }
            )
        if hr is not None:
            panels.append(
                {
                    "label": "HR (ground truth)",
                    "uri": png_uri(_enlarge(hr.crop((x, y, x + c, y + c)), zoom)),
                    "psnr": None,
                    "lpips": None,
                }
            )
        out.append(
            {
                "name": name,
                "size": f"{ref.width}×{ref.height}",
                "crop": f"{c}×{c} at ({x}, {y})",
                "zoom": zoom,
                "overview": png_uri(_overview(ref, (x, y, c))),
                "panels": panels,
            }
        )
    return out, "" if out else "no readable test images"


def real_comparisons(entries: dict, scale: int | None) -> tuple[list[dict], str]:
    """Per held-out real LR image: the same crop of its input and of every model's output."""
    if not any(baseline_kind(n) for n in entries) and "upscale" in entries:
        return [], "no baseline stage in this run ([baseline] kinds = [])"
    if "upscale" not in entries:
        return [], "no upscale stage in this run"
    root = entries["upscale"] / REAL / HELD_OUT
    lr_files = sorted((root / LQ_DIR).iterdir()) if (root / LQ_DIR).is_dir() else []
    if not lr_files:
        return [], "degrade held out no real LR image (degrade data.val_fraction = 0, or no [inputs] real_lr)"
    models = real_order(p.name for p in root.iterdir() if p.is_dir() and p.name != LQ_DIR)
    out = []
    for f in lr_files[:MAX_TEST_IMAGES]:
        lr = _open_rgb(f)
        sr = {m: _open_rgb(root / m / f"{f.stem}.png") for m in models}
        ref = sr.get(BICUBIC)
        if lr is None or ref is None:
            continue
        s = scale or max(1, round(ref.width / lr.width))
        c = max(s, min(CROP_HR, min(ref.size) // 2) // s * s)
        y, x = detail_window(np.asarray(ref.convert("L")), c, s)
        zoom = max(1, CROP_DISPLAY // c)
        panels = [
            {
                "label": "LR input",
                "uri": png_uri(_enlarge(lr.crop((x // s, y // s, (x + c) // s, (y + c) // s)), zoom * s)),
                "psnr": None,
                "lpips": None,
            }
        ]
        for m in models:
            if sr[m] is not None:
                panels.append(
                    {
                        "label": model_label(m, srpipe=True),
                        "uri": png_uri(_enlarge(sr[m].crop((x, y, x + c, y + c)), zoom)),
                        "psnr": None,
                        "lpips": None,
                    }
                )
        out.append(
            {
                "name": f.stem,
                "size": f"{lr.width}×{lr.height} LR",
                "crop": f"{c}×{c} at ({x}, {y})",
                "zoom": zoom,
                "overview": png_uri(_overview(ref, (x, y, c))),
                "panels": panels,
            }
        )
    return out, "" if out else "no readable held-out real LR outputs"


def _overview(img: Image.Image, box: tuple[int, int, int]) -> Image.Image:
    """`img` fitted to THUMB px (nearest when enlarging) with the crop marked."""
    x, y, c = box
    f = THUMB / max(img.size)
    if f >= 2:
        k = int(f)
        small = _enlarge(img, k)
    else:
        k = min(f, 1.0)
        size = (max(1, round(img.width * k)), max(1, round(img.height * k)))
        small = img.resize(size, Image.LANCZOS) if k < 1 else img.copy()
    d = ImageDraw.Draw(small)
    d.rectangle([x * k, y * k, (x + c) * k - 1, (y + c) * k - 1], outline=(230, 30, 60), width=2)
    return small
