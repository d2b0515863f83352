"""The report's plots: the alpha sweep and the training loss curves.

Drawn with matplotlib's Agg canvas (no pyplot, no global state) and embedded as PNG ``data:`` URIs.
"""

from __future__ import annotations

import base64
import csv
import io
import math
from pathlib import Path

import numpy as np

from srpipe.degrade import contract as degrade_contract
from srpipe.pipeline.layout import BICUBIC
from srpipe.pipeline.report.models import alpha_of
from srpipe.pipeline.report.render import finite
from srpipe.pipeline.report.tables import METRICS
from srpipe.upscale import contract as sr_contract

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


def alpha_sweep(metrics: dict | None) -> tuple[str | None, str]:
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
        if k in ("psnr_y", "lpips", "fid") and any(finite(sr[m].get(k)) for _, m in pts)
    ]
    if not panels:
        return None, "the eval metrics have no PSNR-Y, LPIPS or FID values"
    fig = _figure(3.6 * len(panels), 2.8)
    for i, (k, title) in enumerate(panels):
        ax = fig.add_subplot(1, len(panels), i + 1)
        xs = [a for a, m in pts if finite(sr[m].get(k))]
        ys = [sr[m][k] for a, m in pts if finite(sr[m].get(k))]
        ax.plot(xs, ys, marker="o", color="#2563eb", linewidth=1.8)
        b = sr.get(BICUBIC, {}).get(k)
        if finite(b):
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


def loss_plots(entries: dict) -> list[dict]:
    logs = []
    for stage, file, title in (
        ("degrade", degrade_contract.LOG, "DSGAN degradation (degrade)"),
        ("sr_psnr", sr_contract.log_file("psnr"), "ESRGAN PSNR phase (sr_psnr)"),
        ("sr_gan", sr_contract.log_file("gan"), "ESRGAN GAN phase (sr_gan)"),
    ):
        if stage in entries and (entries[stage] / file).is_file():
            logs.append((title, entries[stage] / file))
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
