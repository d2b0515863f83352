"""`srpipe report RUN_DIR`: one self-contained HTML page about a pipeline run.

Reads ``RUN_DIR/run.json`` and the cache entries it names, and renders whatever exists; a section
whose stage is absent (``[sr] enabled = false``, no ``test_hr``, an entry removed by `gc`) says so
instead of failing. The page opens offline: every image is a PNG ``data:`` URI and the CSS is inline.

- Stage table: key prefix, compute time, cached or not, active losses (`Stage.describe`).
- Degradation realism: the eval stage's ``metrics.json["degradation"]`` (held-out real LR vs the
  test pairs' synthetic LR vs bicubic LR), else the degrade entry's ``degradation.json``.
- Sample grids written during training (DSGAN: bicubic LR | synthetic LR | real LR;
  ESRGAN: bicubic | SR | HR), enlarged with nearest neighbour so pixels stay visible.
- srpipe vs the baselines (the `baseline_<kind>` stages: the same SR recipe trained on bicubic pairs,
  or on Real-ESRGAN's blind-degradation pairs, of the same HR): side-by-side crops of every model on
  the real LR images degrade held out (no ground truth), and their metrics on `[inputs] test_pairs`
  (real pairs) when the run has them. Metrics on test pairs made by srpipe's own generator are
  labelled as fit to the learned degradation.
- What the degradation learner learned, for a pdm run: its kernel picture and statistics
  (`report_kernel`).
- Super-resolution comparisons: per test image, the same crop of LR, bicubic, every model and the
  HR, enlarged with nearest neighbour. The crop is the window with the most gradient energy in the
  HR, where SR models differ most (flat regions look alike for every model).
- Metric tables, the alpha sweep (alpha 0 = PSNR model, 1 = GAN model; ESRGAN section 3.4) and the
  loss curves, plotted with matplotlib's Agg canvas (no pyplot, no global state).

The page is a Jinja2 template (``templates/report.html.j2``) with autoescaping on: run data such
as file names and notes never become markup.
"""

from __future__ import annotations

import base64
import csv
import io
import json
import math
import re
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from srpipe.errors import SrpipeError
from srpipe.io.imageio import atomic_write_bytes
from srpipe.pipeline import report_kernel

STAGE_ORDER = (
    "degrade",
    "pairs",
    "test_pairs",
    "sr_psnr",
    "sr_gan",
    "interpolate",
    "bicubic_pairs",
    "baseline_bicubic",
    "blind_pairs",
    "baseline_blind",
    "upscale",
    "eval",
)
KIND_ORDER = ("bicubic", "blind")  # baseline kinds in display order (others after, by name)
LEGACY_BASELINE = {
    "baseline_psnr": "baseline_bicubic_psnr",
    "baseline_gan": "baseline_bicubic_gan",
}  # runs before kinds
FIT = "fit to the learned degradation"  # what test pairs made by srpipe's own generator measure
# (key in metrics.json, column title, higher is better, decimals shown)
METRICS = (
    ("psnr_y", "PSNR-Y (dB)", True, 2),
    ("ssim_y", "SSIM-Y", True, 4),
    ("psnr_rgb", "PSNR-RGB (dB)", True, 2),
    ("ssim_rgb", "SSIM-RGB", True, 4),
    ("psnr_color", "colour PSNR (dB)", True, 2),
    ("lpips", "LPIPS", False, 4),
    ("fid", "FID", False, 2),
)
MAX_TEST_IMAGES = 8  # comparisons shown; the metric tables always cover every image
CROP_HR = 64  # side of the compared crop in HR pixels (smaller images: half their short side)
CROP_DISPLAY = 128  # the crop is enlarged by the largest integer factor that keeps it within this many px
THUMB = 160  # longest side of the overview image that marks the crop (7 panels + overview fit one row)
GRID_WIDTH = 480  # sample grids are enlarged by an integer factor up to about this width
LOSS_LABELS = {
    "d_real": "D(real), mean logit",
    "d_fake": "D(fake), mean logit",
    "color": "colour (low-pass L1)",
    "adv": "adversarial (G)",
    "perceptual": "perceptual",
    "g_total": "G total",
    "l_pix": "pixel L1",
    "l_pix_full": "pixel L1, full band",
    "l_percep": "VGG19 perceptual",
    "l_adv": "RaGAN (G)",
    "d_loss": "RaGAN (D)",
    "val_psnr_y": "held-out PSNR-Y (dB)",
    "val_ssim_y": "held-out SSIM-Y",
    "val_lpips": "held-out LPIPS",
}
LOG_SKIP = ("step", "time", "lr")


def write_report(run_dir: str | Path) -> Path:
    """Write ``RUN_DIR/report.html`` and return its path."""
    run_dir = Path(run_dir)
    page = render(collect(run_dir))
    out = run_dir / "report.html"
    atomic_write_bytes(out, page.encode("utf-8"))
    return out


def render(data: dict) -> str:
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("srpipe.pipeline", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["num"] = fmt_num
    env.filters["fixed"] = fmt_fixed
    env.filters["duration"] = fmt_seconds
    return env.get_template("report.html.j2").render(**data)


# ---------------------------------------------------------------- collecting what the run left


def collect(run_dir: Path) -> dict:
    """Everything the template shows, as plain data (images already encoded)."""
    try:
        record = json.loads((run_dir / "run.json").read_text())
    except FileNotFoundError:
        raise SrpipeError(
            f"{run_dir} has no run.json: it is not a pipeline run folder; "
            "run `srpipe run PIPELINE.toml --out RUN_DIR` first"
        ) from None
    except (OSError, json.JSONDecodeError) as e:
        raise SrpipeError(f"{run_dir / 'run.json'} is unreadable ({e}); rerun `srpipe run` to rewrite it") from None
    recorded = record.get("stages", {})
    entries = {n: Path(s["entry"]) for n, s in recorded.items() if Path(s.get("entry", "")).is_dir()}
    manifests = {n: _read_json(e / "manifest.json") or {} for n, e in entries.items()}
    metrics = _read_json(entries["eval"] / "metrics.json") if "eval" in entries else None
    notes: list[str] = []

    stages = _stage_rows(recorded, entries, manifests)
    method = report_kernel.degrade_method(recorded, manifests)
    learned, learned_why = report_kernel.learned_degradation(entries, method)
    # the baseline stages' kinds (a run from before kinds had one stage, "baseline", on bicubic pairs)
    kinds = sorted(
        {n.removeprefix("baseline_") if n != "baseline" else "bicubic" for n in entries if n.startswith("baseline")},
        key=_kind_key,
    )
    realism, realism_why = _realism(entries, metrics)
    scale = _scale(recorded, entries)
    comparisons, comp_why = _comparisons(entries, metrics, scale, notes)
    real, real_why = _real_comparisons(entries, scale)
    real_pairs = _metric_table(metrics.get("real_pairs"))[0] if metrics and metrics.get("real_pairs") else None
    table, table_why = _metric_table(metrics)
    alpha_plot, alpha_why = _alpha_sweep(metrics)
    return {
        "title": f"srpipe report: {Path(record.get('pipeline', run_dir.name)).stem}",
        "pipeline": record.get("pipeline", "?"),
        "cache": record.get("cache", "?"),
        "srpipe": record.get("srpipe", "?"),
        "run_dir": str(run_dir.resolve()),
        "generated": time.strftime("%Y-%m-%d %H:%M:%S"),
        "stages": stages,
        "missing": [s["name"] for s in stages if s["state"] == "absent"],
        "gone": [s["name"] for s in stages if s["state"] == "gone"],
        "headline": [
            *_headline(metrics, realism, len(real), tuple(kinds)),
            *([report_kernel.headline(learned)] if learned else []),
        ],
        "method": method,
        "learned": learned,
        "learned_why": learned_why,
        "real": real,
        "real_why": real_why,
        "real_pairs": real_pairs,
        "real_pairs_n": len(next(iter(metrics["real_pairs"]["per_image"].values()), [])) if real_pairs else 0,
        "realism": realism,
        "realism_why": realism_why,
        "samples": _sample_grids(entries),
        "samples_why": "" if "degrade" in entries else "no degrade stage output",
        "scale": scale,
        "comparisons": comparisons,
        "comparisons_why": comp_why,
        "metrics": table,
        "metrics_why": table_why,
        "alpha_plot": alpha_plot,
        "alpha_why": alpha_why,
        "losses": _loss_plots(entries),
        "notes": notes + (list(metrics.get("notes", [])) if metrics else []),
    }


def _read_json(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def _stage_rows(recorded: dict, entries: dict, manifests: dict) -> list[dict]:
    names = [n for n in STAGE_ORDER if n in recorded] + sorted(set(recorded) - set(STAGE_ORDER))
    rows = []
    for n in names:
        s, m = recorded[n], manifests.get(n, {})
        rows.append(
            {
                "name": n,
                "key": s.get("key", "")[:12],
                "state": "ok" if n in entries else "gone",
                "seconds": s.get("seconds", m.get("seconds")),
                "cached": s.get("cached"),
                "describe": s.get("describe") or m.get("describe") or "",
                "summary": _short_summary(m.get("summary")),
            }
        )
    for n in STAGE_ORDER:  # what this pipeline file did not enable: shown, greyed out
        if n not in recorded:
            rows.append(
                {
                    "name": n,
                    "key": "",
                    "state": "absent",
                    "seconds": None,
                    "cached": None,
                    "describe": "",
                    "summary": "",
                }
            )
    return rows


def _short_summary(summary) -> str:
    """The manifest summary's scalars and short lists, e.g. "pairs: 12; mode: SDSR"."""
    if not isinstance(summary, dict):
        return ""
    parts = []
    for k, v in summary.items():
        if k == "active_losses":  # already in the stage's `describe`
            continue
        if isinstance(v, (str, int, float)) and not isinstance(v, bool):
            parts.append(f"{k}: {fmt_num(v)}")
        elif isinstance(v, list) and 0 < len(v) <= 8 and all(isinstance(a, (str, int, float)) for a in v):
            parts.append(f"{k}: {', '.join(str(a) for a in v)}")
        elif isinstance(v, dict) and k == "weights" and all(isinstance(a, str) for a in v.values()):
            parts.append(f"weights: {', '.join(v.values())}")
    return "; ".join(parts)


def _scale(recorded: dict, entries: dict) -> int | None:
    for stage in ("upscale", "eval"):
        s = recorded.get(stage, {}).get("params", {})
        if isinstance(s.get("scale"), int):
            return s["scale"]
    pairs = _read_json(entries["test_pairs"] / "pairs.json") if "test_pairs" in entries else None
    return pairs.get("scale") if isinstance(pairs, dict) else None


# ---------------------------------------------------------------- images


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


def alpha_of(model: str) -> float | None:
    """Interpolation weight of the GAN model: psnr 0, gan 1, alpha_0.50 0.5; None for others."""
    if model == "psnr":
        return 0.0
    if model == "gan":
        return 1.0
    m = re.fullmatch(r"alpha_(\d+(?:\.\d+)?)", model)
    return float(m.group(1)) if m else None


def baseline_of(model: str) -> tuple[str, str] | None:
    """(kind, phase) of a baseline model, `baseline_<kind>_<psnr|gan>` (or a run's older `baseline_<phase>`)."""
    m = re.fullmatch(r"baseline_(\w+?)_(psnr|gan)", LEGACY_BASELINE.get(model, model))
    return (m.group(1), m.group(2)) if m else None


def _kind_key(kind: str) -> tuple:
    return (KIND_ORDER.index(kind) if kind in KIND_ORDER else len(KIND_ORDER), kind)


def baseline_names(names, phase: str | None = None) -> list[str]:
    """The baseline models among `names` (of one phase if given), by kind: bicubic, blind, others."""
    found = [(baseline_of(n), n) for n in names]
    found = [(b, n) for b, n in found if b and (phase is None or b[1] == phase)]
    return [n for b, n in sorted(found, key=lambda bn: (_kind_key(bn[0][0]), bn[0][1] != "psnr"))]


def model_order(names) -> list[str]:
    """bicubic, then by alpha (PSNR model ... GAN model), then the baselines, then anything else by name."""
    names = list(names)
    base = [n for n in names if n == "bicubic"]
    alphas = sorted((n for n in names if alpha_of(n) is not None), key=alpha_of)
    baseline = baseline_names(names)
    return base + alphas + baseline + sorted(n for n in names if n not in base + alphas + baseline)


def real_order(names) -> list[str]:
    """The models compared on real LR: bicubic, srpipe's PSNR model and each baseline's, then the GAN models."""
    names = list(names)
    first = [n for n in ("bicubic", "psnr") if n in names] + baseline_names(names, "psnr")
    return first + (["gan"] if "gan" in names else []) + baseline_names(names, "gan")


def model_label(model: str, *, srpipe: bool = False) -> str:
    """Display name; `srpipe` names srpipe's PSNR and GAN models as such (beside the baselines)."""
    b = baseline_of(model)
    if b:
        return f"{b[0]}-pair {b[1].upper()} model"
    if srpipe and model in ("psnr", "gan"):
        return f"srpipe {model.upper()} model"
    a = alpha_of(model)
    if model == "psnr":
        return "PSNR model (α 0)"
    if model == "gan":
        return "GAN model (α 1)"
    if a is not None:
        return f"interpolated α {a:.2f}"
    return model


def _sample_grids(entries: dict) -> list[dict]:
    """The first and last DSGAN grids, the last grid of each SR phase."""
    found = []
    if "degrade" in entries:
        files = sorted((entries["degrade"] / "samples").glob("step_*.png"))
        picks = files[:1] + files[-1:] if len(files) > 1 else files
        for f in picks:
            found.append(("DSGAN", f, ["bicubic LR", "synthetic LR", "real LR"]))
    for stage, phase in (("sr_psnr", "psnr"), ("sr_gan", "gan")):
        if stage in entries:
            files = sorted((entries[stage] / "samples").glob(f"{phase}_*.png"))
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


def _comparisons(entries: dict, metrics: dict | None, scale: int | None, notes: list[str]) -> tuple[list[dict], str]:
    if "upscale" not in entries:
        return [], "no upscale stage in this run ([sr] enabled = false, or no [inputs] test_hr)"
    up = entries["upscale"]
    models = model_order(p.name for p in up.iterdir() if p.is_dir() and p.name != "real")
    pairs = entries.get("test_pairs")
    names = sorted({p.stem for m in models for p in (up / m).glob("*.png")})
    if not names:
        return [], f"the upscale entry {up} holds no images"
    per_image = {m: {r["name"]: r for r in rows} for m, rows in ((metrics or {}).get("per_image") or {}).items()}
    if len(names) > MAX_TEST_IMAGES:
        notes.append(f"comparisons show the first {MAX_TEST_IMAGES} of {len(names)} test images")
    out = []
    for name in names[:MAX_TEST_IMAGES]:
        hr = _open_rgb(pairs / "hr" / f"{name}.png") if pairs else None
        lr = _open_rgb(pairs / "lr" / f"{name}.png") if pairs else None
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


def _real_comparisons(entries: dict, scale: int | None) -> tuple[list[dict], str]:
    """Per held-out real LR image: the same crop of its input and of every model's output."""
    if not any(n.startswith("baseline") for n in entries) and "upscale" in entries:
        return [], "no baseline stage in this run ([baseline] kinds = [])"
    if "upscale" not in entries:
        return [], "no upscale stage in this run"
    root = entries["upscale"] / "real" / "held_out_real"
    lr_files = sorted((root / "lr").iterdir()) if (root / "lr").is_dir() else []
    if not lr_files:
        return [], "degrade held out no real LR image (degrade data.val_fraction = 0, or no [inputs] real_lr)"
    models = real_order(p.name for p in root.iterdir() if p.is_dir() and p.name != "lr")
    out = []
    for f in lr_files[:MAX_TEST_IMAGES]:
        lr = _open_rgb(f)
        sr = {m: _open_rgb(root / m / f"{f.stem}.png") for m in models}
        ref = sr.get("bicubic")
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


# ---------------------------------------------------------------- tables and plots


def _realism(entries: dict, metrics: dict | None) -> tuple[dict | None, str]:
    if metrics and isinstance(metrics.get("degradation"), dict):
        which = {"pairs": "the training pairs' LR"}.get(
            metrics["degradation"].get("synthetic_from"), "the test pairs' LR"
        )
        return {**metrics["degradation"], "source": f"eval stage: held-out real LR vs {which}"}, ""
    if "degrade" in entries:
        d = _read_json(entries["degrade"] / "degradation.json")
        if isinstance(d, dict) and d.get("rows"):
            return {**d, "source": "degrade stage: held-out real LR"}, ""
    if "eval" not in entries:
        return None, "the eval stage is not in this run (it needs [sr] enabled and [inputs] test_hr)"
    return None, (
        "eval found no held-out real LR to compare with (degrade data.val_fraction = 0, or no [inputs] real_lr)"
    )


def _metric_table(metrics: dict | None) -> tuple[dict | None, str]:
    if metrics is None:
        return None, "no eval stage output in this run"
    sr = metrics.get("sr") or {}
    if not sr:
        return None, "the eval stage recorded no SR metrics"
    models = model_order(sr)
    cols = [c for c in METRICS if any(_finite(sr[m].get(c[0])) for m in models)]
    best = {}
    for k, _, hi, _ in cols:
        vals = [sr[m][k] for m in models if _finite(sr[m].get(k))]
        best[k] = max(vals) if hi else min(vals)
    base = sr.get("bicubic", {}).get("psnr_y")
    rows = []
    for m in models:
        cells = [
            {
                "text": fmt_fixed(sr[m].get(k), d),
                "best": len(models) > 1 and _finite(sr[m].get(k)) and sr[m][k] == best[k],
            }
            for k, _, _, d in cols
        ]
        gain = None
        if _finite(base) and _finite(sr[m].get("psnr_y")) and m != "bicubic":
            gain = f"{sr[m]['psnr_y'] - base:+.2f}"
        rows.append({"model": model_label(m), "cells": cells, "gain": gain})
    per_image = []
    pi = metrics.get("per_image") or {}
    for k, title, _, d in cols:
        by_model = {m: {r["name"]: r.get(k) for r in pi.get(m, [])} for m in models}
        names = sorted({n for v in by_model.values() for n in v})
        if names:
            per_image.append(
                {
                    "title": title,
                    "models": [model_label(m) for m in models],
                    "rows": [{"name": n, "values": [fmt_fixed(by_model[m].get(n), d) for m in models]} for n in names],
                }
            )
    return {"columns": [c[1] for c in cols], "rows": rows, "has_gain": _finite(base), "per_image": per_image}, ""


def _finite(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)  # the Agg canvas: a PNG without pyplot or a display
    return fig


def _style(ax) -> None:
    ax.grid(True, color="#e3e6ea", linewidth=0.8)
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    ax.tick_params(labelsize=8)


def _fig_uri(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", facecolor="white")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _alpha_sweep(metrics: dict | None) -> tuple[str | None, str]:
    """PSNR-Y (and LPIPS, FID where present) against alpha, with bicubic as a dashed line."""
    if metrics is None:
        return None, "no eval stage output in this run"
    sr = metrics.get("sr") or {}
    pts = sorted((alpha_of(m), m) for m in sr if alpha_of(m) is not None)
    if len(pts) < 2:
        return None, "needs at least two of the PSNR, GAN and interpolated models in the eval metrics"
    panels = [
        (k, t)
        for k, t, _, _ in METRICS
        if k in ("psnr_y", "lpips", "fid") and any(_finite(sr[m].get(k)) for _, m in pts)
    ]
    if not panels:
        return None, "the eval metrics have no PSNR-Y, LPIPS or FID values"
    fig = _figure(3.6 * len(panels), 2.8)
    for i, (k, title) in enumerate(panels):
        ax = fig.add_subplot(1, len(panels), i + 1)
        xs = [a for a, m in pts if _finite(sr[m].get(k))]
        ys = [sr[m][k] for a, m in pts if _finite(sr[m].get(k))]
        ax.plot(xs, ys, marker="o", color="#2563eb", linewidth=1.8)
        b = sr.get("bicubic", {}).get(k)
        if _finite(b):
            ax.axhline(b, color="#9ca3af", linestyle="--", linewidth=1.2, label="bicubic")
            ax.legend(fontsize=8, frameon=False)
        ax.set_xlabel("α (0 = PSNR model, 1 = GAN model)", fontsize=8)
        ax.set_title(title + (" (lower is better)" if k in ("lpips", "fid") else ""), fontsize=9)
        ax.set_xticks(sorted({a for a, _ in pts}))
        _style(ax)
    return _fig_uri(fig), ""


def read_log(path: Path) -> dict[str, np.ndarray]:
    """A training CSV log as float columns (empty cells: NaN)."""
    with path.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    cols = rows[0].keys() if rows else []

    def num(v):
        try:
            return float(v)
        except (TypeError, ValueError):
            return math.nan

    return {c: np.array([num(r.get(c)) for r in rows]) for c in cols}


def _loss_plots(entries: dict) -> list[dict]:
    logs = []
    for stage, files, title in (
        ("degrade", ("log.csv",), "DSGAN degradation (degrade)"),
        ("sr_psnr", ("log_psnr.csv", "log.csv"), "ESRGAN PSNR phase (sr_psnr)"),
        ("sr_gan", ("log_gan.csv", "log.csv"), "ESRGAN GAN phase (sr_gan)"),
    ):
        path = next((entries[stage] / f for f in files if stage in entries and (entries[stage] / f).is_file()), None)
        if path is not None:
            logs.append((title, path))
    out = []
    for title, path in logs:
        log = read_log(path)
        if "step" not in log or not len(log["step"]):
            continue
        cols = [c for c in log if c not in LOG_SKIP and np.isfinite(log[c]).any()]
        if not cols:
            continue
        ncols = min(4, len(cols))
        nrows = math.ceil(len(cols) / ncols)
        fig = _figure(3.0 * ncols, 2.2 * nrows)
        for i, c in enumerate(cols):
            ax = fig.add_subplot(nrows, ncols, i + 1)
            ok = np.isfinite(log[c])
            ax.plot(
                log["step"][ok],
                log[c][ok],
                color="#2563eb" if not c.startswith("val_") else "#16a34a",
                linewidth=1.4,
                marker="o" if ok.sum() <= 25 else None,
                markersize=3,
            )
            ax.set_title(LOSS_LABELS.get(c, c), fontsize=9)
            if i >= len(cols) - ncols:
                ax.set_xlabel("step", fontsize=8)
            _style(ax)
        out.append(
            {
                "title": title,
                "file": path.name,
                "steps": int(np.nanmax(log["step"])),
                "columns": cols,
                "uri": _fig_uri(fig),
            }
        )
    return out


def _versus(sr: dict, key: str, unit: str, decimals: int, higher: bool) -> str | None:
    """ "PSNR models: srpipe 26.10 dB vs bicubic-pair 25.90 dB (+0.20: srpipe better), vs blind-pair ...;
    GAN models: ..." for one metric, against every baseline of each phase."""
    parts = []
    for ours in ("psnr", "gan"):
        a = (sr.get(ours) or {}).get(key)
        if not _finite(a):
            continue
        against = []
        for theirs in baseline_names(sr, ours):
            b, kind = sr[theirs].get(key), baseline_of(theirs)[0]
            if _finite(b):
                d = a - b
                verdict = "tie" if d == 0 else ("srpipe better" if (d > 0) == higher else f"{kind}-pair better")
                against.append(f"{kind}-pair {b:.{decimals}f}{unit} ({d:+.{decimals}f}: {verdict})")
        if against:
            parts.append(f"{ours.upper()} models: srpipe {a:.{decimals}f}{unit} vs " + ", vs ".join(against))
    return "; ".join(parts) or None


def _headline(metrics: dict | None, realism: dict | None, n_real: int = 0, kinds: tuple[str, ...] = ()) -> list[str]:
    """One-line answers to "is it working": srpipe vs the baselines' SR on real images first, then the
    fit to the learned degradation, then synthetic LR vs bicubic LR."""
    lines = []
    judged = [r for r in (realism or {}).get("rows", []) if r.get("closer")]
    wins = sum(r["closer"] == "synthetic" for r in judged)
    if n_real:
        which = " and ".join(f"the {k}-pair" for k in kinds) or "the baseline"
        line = (
            f"Held-out real LR of the target domain ({n_real} image{'s' if n_real > 1 else ''}, no ground truth): "
            f"side-by-side crops of srpipe's models and {which} models below"
        )
        if judged:
            line += (
                f"; their training inputs: srpipe's synthetic LR is closer to the real LR than bicubic LR on "
                f"{wins} of {len(judged)} realism statistics"
            )
        lines.append(line + ".")
    rp = (metrics or {}).get("real_pairs") or {}
    if rp.get("sr"):
        n = len(next(iter((rp.get("per_image") or {}).values()), []))
        for key, title, unit, dec, hi in (("psnr_y", "PSNR-Y", " dB", 2, True), ("lpips", "LPIPS", "", 4, False)):
            v = _versus(rp["sr"], key, unit, dec, hi)
            if v:
                lines.append(f"Real pairs (ground truth, {n} images), {title}: {v}.")
    sr = (metrics or {}).get("sr") or {}
    base = sr.get("bicubic", {}).get("psnr_y")
    trained = [m for m in sr if m != "bicubic" and not m.startswith("baseline_") and _finite(sr[m].get("psnr_y"))]
    fit = f"Test pairs made by srpipe's own generator ({FIT}, not real-world quality): "
    if _finite(base) and trained:
        best = max(trained, key=lambda m: sr[m]["psnr_y"])
        d = sr[best]["psnr_y"] - base
        lines.append(
            fit + f"Best PSNR-Y: {model_label(best)} {sr[best]['psnr_y']:.2f} dB vs bicubic {base:.2f} dB "
            f"({d:+.2f} dB: {'beats' if d > 0 else 'does not beat'} bicubic)."
        )
        v = _versus(sr, "psnr_y", " dB", 2, True)
        if v:
            lines.append(fit + f"PSNR-Y against the baseline models: {v}.")
    lp = [m for m in sr if _finite(sr[m].get("lpips"))]
    if lp:
        best = min(lp, key=lambda m: sr[m]["lpips"])
        lines.append(fit + f"Lowest LPIPS: {model_label(best)} {sr[best]['lpips']:.4f}.")
    if judged and not n_real:
        lines.append(
            f"Degradation realism: the synthetic LR is closer to real LR than bicubic LR on {wins} of "
            f"{len(judged)} statistics."
        )
    return lines


# ---------------------------------------------------------------- formatting (template filters)


def fmt_num(v) -> str:
    """4 significant digits; lists as "a / b / c"; None as a dash."""
    if v is None:
        return "–"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, list):
        return " / ".join(fmt_num(a) for a in v)
    if isinstance(v, float):
        if math.isnan(v):
            return "n/a"
        if math.isinf(v):
            return "∞" if v > 0 else "-∞"
        return f"{v:.4g}" if abs(v) < 1e5 else f"{v:.3e}"
    return str(v)


def fmt_fixed(v, decimals: int) -> str:
    if v is None:
        return "–"
    if isinstance(v, (int, float)) and not math.isfinite(v):
        return fmt_num(float(v))
    return f"{v:.{decimals}f}"


def fmt_seconds(v) -> str:
    if not _finite(v):
        return "–"
    if v < 60:
        return f"{v:.1f} s"
    m, s = divmod(int(round(v)), 60)
    return f"{m} min {s:02d} s" if m < 60 else f"{m // 60} h {m % 60:02d} min"
