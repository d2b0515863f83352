"""The pipeline file: one TOML describing a whole experiment.

```toml
[inputs]                      # paths are relative to this file
hr = "data/demo/hr"           # clean HR photos (DSGAN's source domain, and the HR of the training pairs)
real_lr = "data/demo/real_lr" # real low-quality photos of the target domain
test_hr = "data/demo/test_hr" # held-out HR: realistic test pairs are made from it for evaluation
# pairs_hr = "..."            # HR folder for the training pairs (default: hr)
# test_pairs = "..."          # real LR/HR pairs of the target domain (lr/ and hr/, same names): ground truth

[degrade]                     # the method's config class: preset, then [degrade.config.*] overrides
method = "pdm"                # pdm (PDMConfig) or dsgan (DegradeConfig); default srpipe.degrade.config.DEFAULT_METHOD
preset = "tiny"
[degrade.config.optim]
iters = 300

[pairs]
cleanup_factor = 1            # 1 = SDSR, 2 = TDSR
jpeg = "auto"                 # JPEG stage after G: auto (estimated from real_lr), off, "Q" or "QMIN:QMAX"

[sr]                          # UpscaleConfig: preset, then [sr.config.*] overrides
preset = "tiny"

[baseline]                    # the same SR recipe and budget on other pairs of the same HR, compared in the report
kinds = ["bicubic", "blind"]  # bicubic: bicubic_down LR; blind: Real-ESRGAN's blind degradation; [] for none
[baseline.blind]
draws = 2                     # blind LR draws per HR image
seed = 0                      # seeds the blind draws

[interpolate]
alphas = [0.8]                # network interpolation, alpha weights the GAN model

[upscale]
tile = 256                    # LR tile size for the test images

[eval]
fid = true                    # FID/KID where the Inception weights resolve
```

Every section and key is checked; unknown ones are errors, as in stage configs. The older spelling
`[baseline] bicubic = true | false` still works (it means kinds = ["bicubic"] | []); giving it together
with `kinds` is an error.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from srpipe.config import build_config, check_value, read_toml, to_dict
from srpipe.errors import UsageError

SECTIONS = {
    "inputs": {"hr", "real_lr", "test_hr", "pairs_hr", "test_pairs"},
    "degrade": {"method", "preset", "config"},
    "pairs": {"cleanup_factor", "jpeg"},
    "sr": {"enabled", "preset", "config"},
    "baseline": {"kinds", "bicubic", "blind"},
    "interpolate": {"alphas"},
    "upscale": {"tile"},
    "eval": {"enabled", "fid"},
}
BASELINE_KINDS = ("bicubic", "blind")  # the pairs a user would make without learning anything
DEFAULT_BASELINES = ("bicubic", "blind")
BLIND_KEYS = {"draws", "seed"}


@dataclass(frozen=True)
class Pipeline:
    path: Path
    inputs: dict[str, Path]
    degrade: object  # the method's config: DegradeConfig (dsgan) or PDMConfig (pdm)
    cleanup_factor: int
    sr: object | None  # UpscaleConfig, None when [sr] enabled = false
    alphas: tuple[float, ...]
    tile: int
    eval: bool
    fid: bool
    jpeg: str = "auto"  # make-pairs --jpeg for the training and test pairs, as its stable string
    method: str = "dsgan"  # [degrade] method: which learner's train() the degrade stage calls
    baselines: tuple[str, ...] = DEFAULT_BASELINES  # [baseline] kinds (empty without [sr])
    blind_draws: int = 2  # [baseline.blind] draws: blind LR draws per HR image
    blind_seed: int = 0  # [baseline.blind] seed

    def params(self) -> dict:
        """Everything result-changing, as plain data (for display and tests)."""
        return {
            "method": self.method,
            "degrade": to_dict(self.degrade),
            "cleanup_factor": self.cleanup_factor,
            "sr": to_dict(self.sr) if self.sr else None,
            "alphas": list(self.alphas),
            "tile": self.tile,
            "eval": self.eval,
            "fid": self.fid,
            "jpeg": self.jpeg,
            "baselines": list(self.baselines),
            "blind": {"draws": self.blind_draws, "seed": self.blind_seed},
        }


def _check(where: str, table, allowed: set[str]) -> dict:
    if not isinstance(table, dict):
        raise UsageError(f"pipeline: [{where}] must be a table")
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise UsageError(
            f"pipeline: unknown key(s) {', '.join(unknown)} in [{where}]; valid: {', '.join(sorted(allowed))}"
        )
    return table


def _typed(where: str, value, tp, default):
    """`value` checked as stage configs are (`check_value`), or `default` when the key is absent."""
    return default if value is None else check_value(value, tp, f"{where} (pipeline file)")


def method_config(method: str) -> tuple[type, dict]:
    """(config class, presets) of a degradation learner."""
    from srpipe.degrade import config

    if method == "dsgan":
        return config.DegradeConfig, config.PRESETS
    if method == "pdm":
        try:
            return config.PDMConfig, config.PDM_PRESETS
        except AttributeError:
            raise UsageError('pipeline: [degrade] method = "pdm" is not available in this srpipe version') from None
    raise UsageError(f"pipeline: [degrade] method must be one of {', '.join(config.METHODS)}, got {method!r}")


def degrade_setting(cfg, name: str, default):
    """`cfg.data.<name>` of either learner's config (scale, same_domain, val_fraction), else `default`."""
    return getattr(getattr(cfg, "data", None), name, default)


def _baselines(sec: dict, has_sr: bool) -> tuple[tuple[str, ...], int, int]:
    """([baseline] kinds, blind draws, blind seed); the old `bicubic = true|false` maps onto kinds."""
    if "kinds" in sec and "bicubic" in sec:
        raise UsageError(
            'pipeline: [baseline] has both kinds and bicubic; keep kinds only (bicubic = true is kinds = ["bicubic"])'
        )
    if "bicubic" in sec:
        kinds = ("bicubic",) if _typed("baseline.bicubic", sec["bicubic"], bool, True) else ()
    else:
        kinds = _typed("baseline.kinds", sec.get("kinds"), tuple[str, ...], DEFAULT_BASELINES)
    for k in kinds:
        if k not in BASELINE_KINDS:
            raise UsageError(f"pipeline: [baseline] kinds: {k!r} is not one of {', '.join(BASELINE_KINDS)}")
    if len(set(kinds)) != len(kinds):
        raise UsageError(f"pipeline: [baseline] kinds lists a kind twice: {list(kinds)}")
    blind = _check("baseline.blind", sec.get("blind", {}), BLIND_KEYS)
    draws = _typed("baseline.blind.draws", blind.get("draws"), int, 2)
    if draws < 1:
        raise UsageError(f"pipeline: [baseline.blind] draws must be >= 1, got {draws}")
    seed = _typed("baseline.blind.seed", blind.get("seed"), int, 0)
    return (kinds if has_sr else ()), draws, seed


def load_pipeline(path: str | Path) -> Pipeline:
    """Parse and validate a pipeline file; stage configs are built (and checked) here."""
    from srpipe.degrade.config import DEFAULT_METHOD
    from srpipe.upscale.config import PRESETS as UPRESETS, UpscaleConfig

    p = Path(path)
    data = read_toml(p)
    _check("top level", data, set(SECTIONS))
    sec = {name: _check(name, data.get(name, {}), keys) for name, keys in SECTIONS.items()}
    base = p.parent

    ins = sec["inputs"]
    if "hr" not in ins:
        raise UsageError(f'pipeline {p}: [inputs] hr = "FOLDER" is required')
    inputs = {k: (base / _typed(f"inputs.{k}", v, str, "")).resolve() for k, v in ins.items()}
    inputs.setdefault("pairs_hr", inputs["hr"])
    if "test_pairs" in inputs:
        tp = inputs["test_pairs"]
        if not ((tp / "lr").is_dir() and (tp / "hr").is_dir()):
            raise UsageError(
                f"pipeline {p}: [inputs] test_pairs = {str(tp)!r} must hold lr/ and hr/ folders "
                "(real LR/HR pairs with the same file names)"
            )

    def stage_cfg(name, cls, presets):
        preset = _typed(f"{name}.preset", sec[name].get("preset"), str, "paper")
        if preset not in presets:
            raise UsageError(f"pipeline: {name}.preset must be one of {', '.join(presets)}, got {preset!r}")
        over = sec[name].get("config", {})
        if not isinstance(over, dict):
            raise UsageError(f"pipeline: {name}.config must be a table, e.g. [{name}.config.data]")
        return build_config(cls, preset=presets[preset], toml=over)

    method = _typed("degrade.method", sec["degrade"].get("method"), str, DEFAULT_METHOD)
    degrade = stage_cfg("degrade", *method_config(method))
    scale = degrade_setting(degrade, "scale", 4)
    if not degrade_setting(degrade, "same_domain", False) and "real_lr" not in inputs:
        raise UsageError(f"pipeline {p}: [inputs] real_lr is required (or set degrade.config.data.same_domain = true)")
    sr = None
    if _typed("sr.enabled", sec["sr"].get("enabled"), bool, True):
        sr = stage_cfg("sr", UpscaleConfig, UPRESETS)
        if sr.data.scale != scale:
            raise UsageError(
                f"pipeline: sr scale x{sr.data.scale} differs from degrade scale x{scale}; "
                f"set [sr.config.data] scale = {scale}"
            )
    alphas = _typed("interpolate.alphas", sec["interpolate"].get("alphas"), tuple[float, ...], (0.8,))
    for a in alphas:
        if not 0 <= a <= 1:
            raise UsageError(f"pipeline: interpolate.alphas values must be in [0, 1], got {a}")
    cleanup = _typed("pairs.cleanup_factor", sec["pairs"].get("cleanup_factor"), int, 1)
    if cleanup < 1:
        raise UsageError("pipeline: pairs.cleanup_factor must be >= 1")
    tile = _typed("upscale.tile", sec["upscale"].get("tile"), int, 256)
    from srpipe.io.jpeg import parse_jpeg

    jpeg_text = _typed("pairs.jpeg", sec["pairs"].get("jpeg"), str, "auto")
    try:
        jpeg = str(parse_jpeg(jpeg_text))
    except UsageError as e:
        raise UsageError(f"pipeline: pairs.jpeg: {e}") from None
    baselines, draws, seed = _baselines(sec["baseline"], sr is not None)
    return Pipeline(
        path=p.resolve(),
        inputs=inputs,
        degrade=degrade,
        cleanup_factor=cleanup,
        sr=sr,
        alphas=alphas,
        tile=tile,
        eval=_typed("eval.enabled", sec["eval"].get("enabled"), bool, True),
        fid=_typed("eval.fid", sec["eval"].get("fid"), bool, True),
        jpeg=jpeg,
        method=method,
        baselines=baselines,
        blind_draws=draws,
        blind_seed=seed,
    )
