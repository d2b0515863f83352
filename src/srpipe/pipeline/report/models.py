"""The models in a run's outputs: their order on the page and their display names.

Model folders are named `bicubic`, `psnr`, `gan`, `alpha_<a>` (interpolated, ESRGAN section 3.4) and
`baseline_<kind>_<psnr|gan>` (the same SR recipe on bicubic or blind pairs; runs before kinds wrote
`baseline_<psnr|gan>`).
"""

from __future__ import annotations

import re

from srpipe.pipeline.layout import BASELINE, BICUBIC, baseline_models, real_set_models
from srpipe.upscale import contract as sr_contract

KIND_ORDER = ("bicubic", "blind")  # baseline kinds in display order (others after, by name)
# runs before kinds: one stage, on bicubic pairs, and its models baseline_<phase>
LEGACY_BASELINE_STAGE = "baseline"
LEGACY_BASELINE = {f"{BASELINE}{phase}": m for phase, m in zip(sr_contract.PHASES, baseline_models("bicubic"))}
# the names `baseline_models` gives: baseline_<kind>_<phase>
BASELINE_MODEL = re.compile(re.escape(BASELINE) + r"(\w+?)_(" + "|".join(sr_contract.PHASES) + ")")


def alpha_of(model: str) -> float | None:
    """Interpolation weight of the GAN model: psnr 0, gan 1, alpha_0.50 0.5; None for others."""
    if model == "psnr":
        return 0.0
    if model == "gan":
        return 1.0
    return sr_contract.alpha_of(model)


def baseline_of(model: str) -> tuple[str, str] | None:
    """(kind, phase) of a baseline model, `baseline_<kind>_<psnr|gan>` (or a run's older `baseline_<phase>`)."""
    m = BASELINE_MODEL.fullmatch(LEGACY_BASELINE.get(model, model))
    return (m.group(1), m.group(2)) if m else None


def baseline_kind(stage: str) -> str | None:
    """The kind of a baseline stage, `baseline_<kind>` (a run's older `baseline`: bicubic); None for other stages."""
    if stage == LEGACY_BASELINE_STAGE:
        return "bicubic"
    return stage.removeprefix(BASELINE) if stage.startswith(BASELINE) else None


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
    base = [n for n in names if n == BICUBIC]
    alphas = sorted((n for n in names if alpha_of(n) is not None), key=alpha_of)
    baseline = baseline_names(names)
    return base + alphas + baseline + sorted(n for n in names if n not in base + alphas + baseline)


def real_order(names) -> list[str]:
    """The models compared on real LR: bicubic, then as the upscale stage ran them (`layout.real_set_models`:
    srpipe's PSNR model and each baseline's, then the GAN models), the baselines by kind."""
    names = list(names)
    by_kind = baseline_names(names) + [n for n in names if not baseline_of(n)]
    return [n for n in names if n == BICUBIC] + real_set_models(by_kind)


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
