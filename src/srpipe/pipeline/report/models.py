"""The models in a run's outputs: their order on the page and their display names.

Model folders are named `bicubic`, `psnr`, `gan`, `alpha_<a>` (interpolated, ESRGAN section 3.4) and
`baseline_<kind>_<psnr|gan>` (the same SR recipe on bicubic or blind pairs; runs before kinds wrote
`baseline_<psnr|gan>`).
"""

from __future__ import annotations

import re

KIND_ORDER = ("bicubic", "blind")  # baseline kinds in display order (others after, by name)
LEGACY_BASELINE = {
    "baseline_psnr": "baseline_bicubic_psnr",
    "baseline_gan": "baseline_bicubic_gan",
}  # runs before kinds


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


def kind_key(kind: str) -> tuple:
    return (KIND_ORDER.index(kind) if kind in KIND_ORDER else len(KIND_ORDER), kind)


def baseline_names(names, phase: str | None = None) -> list[str]:
    """The baseline models among `names` (of one phase if given), by kind: bicubic, blind, others."""
    found = [(baseline_of(n), n) for n in names]
    found = [(b, n) for b, n in found if b and (phase is None or b[1] == phase)]
    return [n for b, n in sorted(found, key=lambda bn: (kind_key(bn[0][0]), bn[0][1] != "psnr"))]


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
