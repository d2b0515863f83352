"""The report's "Learned degradation" section: what a pdm run learned, from its run folder.

A pdm degrade entry holds ``kernel.png`` (the magnified mean kernel and a few draws) and
``kernel.json`` (``stats``: `srpipe.io.kernels.kernel_stats` of the mean kernel, ``draw_stats``
of the draws, ``noise_sigma`` in 8-bit levels, ``jpeg``: the JPEG estimate). The picture is embedded
as it is (its PNG bytes in a ``data:`` URI) and the statistics become a table. A DSGAN run has
no explicit kernel: the section says so instead.
"""

from __future__ import annotations

import base64
import json
import math
from pathlib import Path

from srpipe.degrade.contract import KERNEL, KERNEL_PICTURE


def _read_json(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def degrade_method(recorded: dict, manifests: dict) -> str:
    """The degrade stage's method: its manifest summary, else its recorded params; runs before pdm: dsgan."""
    summary = (manifests.get("degrade") or {}).get("summary") or {}
    params = (recorded.get("degrade") or {}).get("params") or {}
    return str(summary.get("method") or params.get("method") or "dsgan")


def _num(v, decimals: int = 2) -> str:
    if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
        return f"{v:.{decimals}f}"
    if isinstance(v, (list, tuple)) and v:
        return " / ".join(_num(a, decimals) for a in v)
    return "–"


def _jpeg_text(j) -> str:
    from srpipe.io.jpeg import JpegEstimate

    if not j:
        return "–"
    try:
        return JpegEstimate.from_json(j).describe()
    except (ValueError, TypeError, KeyError):
        return "unreadable estimate"


def _bicubic_like_width(scale) -> float | None:
    """Width of the Gaussian PDM starts from, the one closest to bicubic downscaling at `scale`."""
    from srpipe.degrade.config import DataConfig, PDMConfig

    try:
        return PDMConfig(data=DataConfig(scale=int(scale), hr_crop=int(scale) * 32)).init_sigma
    except (TypeError, ValueError):
        return None


def learned_degradation(entries: dict, method: str) -> tuple[dict | None, str]:
    """The section's data (picture URI, rows of statistics), or None and why there is none."""
    if "degrade" not in entries:
        return None, "no degrade stage output in this run"
    d = entries["degrade"]
    k = _read_json(d / KERNEL)
    if not isinstance(k, dict):
        if method == "pdm":
            return None, f"the pdm degrade entry {d} has no readable {KERNEL}"
        return None, (
            f"the degrade stage used {method}, which learns no explicit blur kernel (a network that works "
            'on the bicubic LR); [degrade] method = "pdm" learns one'
        )
    st = k.get("stats") or {}
    draws = [s.get("width") for s in k.get("draw_stats") or [] if isinstance(s, dict)]
    draws = [w for w in draws if isinstance(w, (int, float))]
    scale = k.get("scale")
    ref = _bicubic_like_width(scale) if scale else None
    rows = [
        (
            "width √(σ_major · σ_minor)",
            _num(st.get("width")),
            "HR px",
            f"bicubic-like Gaussian: {_num(ref)}" if ref else "",
        ),
        ("σ major / σ minor", _num([st.get("sigma_major"), st.get("sigma_minor")]), "HR px", ""),
        ("anisotropy σ major / σ minor", _num(st.get("anisotropy")), "ratio", "1 = isotropic"),
        ("angle of the major axis", _num(st.get("angle_deg"), 1), "degrees", ""),
        ("centre of mass offset (dy, dx)", _num(st.get("centre")), "HR px", "0 = on the LR pixel centre"),
        ("negative mass", _num(st.get("negative_mass"), 4), "", "> 0: sharpening"),
    ]
    if draws:
        rows.append(("width over the draws", f"{min(draws):.2f} – {max(draws):.2f}", "HR px", f"{len(draws)} draws"))
    rows.append(("noise σ", _num(k.get("noise_sigma")), "8-bit levels", ""))
    rows.append(("JPEG stage", _jpeg_text(k.get("jpeg")), "", ""))
    pic = d / KERNEL_PICTURE
    uri = "data:image/png;base64," + base64.b64encode(pic.read_bytes()).decode("ascii") if pic.is_file() else None
    return {
        "method": str(k.get("method") or method),
        "scale": scale,
        "size": k.get("size"),
        "picture": uri,
        "picture_why": "" if uri else f"{pic} is missing",
        "rows": [{"label": a, "value": b, "unit": c, "note": n} for a, b, c, n in rows],
        "width": st.get("width"),
        "anisotropy": st.get("anisotropy"),
    }, ""


def headline(learned: dict | None) -> str | None:
    """One summary line: the learned kernel's width and anisotropy, the noise, the JPEG stage."""
    if not learned:
        return None
    by = {r["label"]: r["value"] for r in learned["rows"]}
    return (
        f"Learned degradation ({learned['method']}, x{learned['scale']}): blur kernel width "
        f"{_num(learned['width'])} HR px, anisotropy {_num(learned['anisotropy'])}; noise σ {by['noise σ']} "
        f"levels; JPEG: {by['JPEG stage']}."
    )
