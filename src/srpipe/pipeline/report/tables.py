"""The report's metric tables and headline: the eval stage's numbers as rows and one-line answers."""

from __future__ import annotations

from srpipe.pipeline.layout import BASELINE, BICUBIC
from srpipe.pipeline.report.models import baseline_names, baseline_of, model_label, model_order
from srpipe.pipeline.report.render import finite, fmt_fixed

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


def metric_table(metrics: dict | None) -> tuple[dict | None, str]:
    if metrics is None:
        return None, "no eval stage output in this run"
    sr = metrics.get("sr") or {}
    if not sr:
        return None, "the eval stage recorded no SR metrics"
    models = model_order(sr)
    cols = [c for c in METRICS if any(finite(sr[m].get(c[0])) for m in models)]
    best = {}
    for k, _, hi, _ in cols:
        vals = [sr[m][k] for m in models if finite(sr[m].get(k))]
        best[k] = max(vals) if hi else min(vals)
    base = sr.get(BICUBIC, {}).get("psnr_y")
    rows = []
    for m in models:
        cells = [
            {
                "text": fmt_fixed(sr[m].get(k), d),
                "best": len(models) > 1 and finite(sr[m].get(k)) and sr[m][k] == best[k],
            }
            for k, _, _, d in cols
        ]
        gain = None
        if finite(base) and finite(sr[m].get("psnr_y")) and m != BICUBIC:
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
    return {"columns": [c[1] for c in cols], "rows": rows, "has_gain": finite(base), "per_image": per_image}, ""


def _versus(sr: dict, key: str, unit: str, decimals: int, higher: bool) -> str | None:
    """ "PSNR models: srpipe 26.10 dB vs bicubic-pair 25.90 dB (+0.20: srpipe better), vs blind-pair ...;
    GAN models: ..." for one metric, against every baseline of each phase."""
    parts = []
    for ours in ("psnr", "gan"):
        a = (sr.get(ours) or {}).get(key)
        if not finite(a):
            continue
        against = []
        for theirs in baseline_names(sr, ours):
            b, kind = sr[theirs].get(key), baseline_of(theirs)[0]
            if finite(b):
                d = a - b
                verdict = "tie" if d == 0 else ("srpipe better" if (d > 0) == higher else f"{kind}-pair better")
                against.append(f"{kind}-pair {b:.{decimals}f}{unit} ({d:+.{decimals}f}: {verdict})")
        if against:
            parts.append(f"{ours.upper()} models: srpipe {a:.{decimals}f}{unit} vs " + ", vs ".join(against))
    return "; ".join(parts) or None


def headline(metrics: dict | None, realism: dict | None, n_real: int = 0, kinds: tuple[str, ...] = ()) -> list[str]:
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
    base = sr.get(BICUBIC, {}).get("psnr_y")
    trained = [m for m in sr if m != BICUBIC and not m.startswith(BASELINE) and finite(sr[m].get("psnr_y"))]
    fit = f"Test pairs made by srpipe's own generator ({FIT}, not real-world quality): "
    if finite(base) and trained:
        best = max(trained, key=lambda m: sr[m]["psnr_y"])
        d = sr[best]["psnr_y"] - base
        lines.append(
            fit + f"Best PSNR-Y: {model_label(best)} {sr[best]['psnr_y']:.2f} dB vs bicubic {base:.2f} dB "
            f"({d:+.2f} dB: {'beats' if d > 0 else 'does not beat'} bicubic)."
        )
        v = _versus(sr, "psnr_y", " dB", 2, True)
        if v:
            lines.append(fit + f"PSNR-Y against the baseline models: {v}.")
    lp = [m for m in sr if finite(sr[m].get("lpips"))]
    if lp:
        best = min(lp, key=lambda m: sr[m]["lpips"])
        lines.append(fit + f"Lowest LPIPS: {model_label(best)} {sr[best]['lpips']:.4f}.")
    if judged and not n_real:
        lines.append(
            f"Degradation realism: the synthetic LR is closer to real LR than bicubic LR on {wins} of "
            f"{len(judged)} statistics."
        )
    return lines
