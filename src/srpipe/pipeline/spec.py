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

Each section is a frozen dataclass below, with its defaults and their reasons, read through the
one config validator (`srpipe.config.build_config`): unknown sections and keys, and values of the
wrong type or range, are errors, as in stage configs. The older spelling `[baseline] bicubic = true |
false` still works (it means kinds = ["bicubic"] | []); giving it together with `kinds` is an error.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal, get_args

from srpipe.config import build_config, read_toml, to_dict
from srpipe.degrade.config import METHODS
from srpipe.errors import UsageError
from srpipe.io.pair_folder import GT_DIR, LQ_DIR

BaselineKind = Literal["bicubic", "blind"]  # the pairs a user would make without learning anything
BASELINE_KINDS: tuple[str, ...] = get_args(BaselineKind)
DEFAULT_BASELINES = BASELINE_KINDS


# ---- the sections, as written


@dataclass(frozen=True)
class InputsSection:
    """[inputs]: folders, relative to the pipeline file ("": not given)."""

    hr: str = ""  # required: clean HR photos (degrade's source domain, the HR of the training pairs)
    real_lr: str = ""  # real low-quality photos of the target domain (needed unless degrade's same_domain)
    test_hr: str = ""  # held-out HR: realistic test pairs are made from it for evaluation ("": none)
    pairs_hr: str = ""  # HR folder of the training pairs ("": hr)
    test_pairs: str = ""  # real LR/HR pairs of the target domain, lr/ and hr/ with the same names ("": none)

    def __post_init__(self):
        if not self.hr:
            raise ValueError('inputs.hr = "FOLDER" is required (the clean HR photos)')


@dataclass(frozen=True)
class DegradeSection:
    """[degrade]: the learner, its preset, then [degrade.config.*] overrides for its config class."""

    method: str = ""  # dsgan (DegradeConfig) or pdm (PDMConfig); "": srpipe.degrade.config.DEFAULT_METHOD
    preset: str = "paper"  # a preset of the method's config (srpipe.degrade.config PRESETS, PDM_PRESETS)
    config: dict = field(default_factory=dict)  # overrides, checked by the method's config class

    def __post_init__(self):
        if self.method and self.method not in METHODS:
            raise ValueError(f"degrade.method must be one of {', '.join(METHODS)}, got {self.method!r}")


@dataclass(frozen=True)
class PairsSection:
    """[pairs]: how make-pairs turns HR into the training and test pairs."""

    cleanup_factor: int = 1  # HR bicubic-downscaled by this first: 1 = SDSR, 2 = TDSR (DSGAN paper)
    jpeg: str = "auto"  # JPEG stage after G: auto (estimated from real_lr), off, "Q" or "QMIN:QMAX"

    def __post_init__(self):
        if self.cleanup_factor < 1:
            raise ValueError(f"pairs.cleanup_factor must be >= 1, got {self.cleanup_factor}")
        self.stable_jpeg()  # a spelling make-pairs would refuse fails here, before anything runs

    def stable_jpeg(self) -> str:
        """`jpeg` in its one stable spelling ("30:050" -> "30:50"): what enters the pairs stages' keys."""
        from srpipe.io.jpeg import parse_jpeg

        try:
            return str(parse_jpeg(self.jpeg))
        except UsageError as e:
            raise ValueError(f"pairs.jpeg: {e}") from None


@dataclass(frozen=True)
class SrSection:
    """[sr]: the SR recipe (UpscaleConfig): preset, then [sr.config.*] overrides."""

    enabled: bool = True  # false: the pipeline ends with the pairs (no SR, baselines, upscale or eval)
    preset: str = "paper"  # a preset of srpipe.upscale.config.PRESETS
    config: dict = field(default_factory=dict)  # overrides, checked by UpscaleConfig


@dataclass(frozen=True)
class BlindSection:
    """[baseline.blind]: Real-ESRGAN's blind degradation (srpipe.degrade.blind)."""

    draws: int = 2  # blind LR draws per HR image (one draw would pin each HR to a single degradation)
    seed: int = 0  # seeds the blind draws

    def __post_init__(self):
        if self.draws < 1:
            raise ValueError(f"baseline.blind.draws must be >= 1, got {self.draws}")


@dataclass(frozen=True)
class BaselineSection:
    """[baseline]: the same SR recipe and budget on other pairs of the same HR, compared in the report."""

    kinds: tuple[BaselineKind, ...] = DEFAULT_BASELINES  # bicubic: bicubic_down LR; blind: Real-ESRGAN's; [] none
    bicubic: bool | None = None  # the older spelling: true = kinds ["bicubic"], false = kinds []
    blind: BlindSection = field(default_factory=BlindSection)  # [baseline.blind]

    def __post_init__(self):
        if len(set(self.kinds)) != len(self.kinds):
            raise ValueError(f"baseline.kinds lists a kind twice: {list(self.kinds)}")

    def chosen(self) -> tuple[str, ...]:
        """The kinds asked for, in either spelling."""
        if self.bicubic is None:
            return self.kinds
        return ("bicubic",) if self.bicubic else ()


@dataclass(frozen=True)
class InterpolateSection:
    alphas: tuple[float, ...] = (0.8,)  # network interpolation, alpha weights the GAN model (ESRGAN paper: 0.8)

    def __post_init__(self):
        for a in self.alphas:
            if not 0 <= a <= 1:
                raise ValueError(f"interpolate.alphas values must be in [0, 1], got {a}")


@dataclass(frozen=True)
class UpscaleSection:
    tile: int = 256  # LR tile size for the test and real images (0: whole images); bounds the memory

    def __post_init__(self):
        if self.tile < 0:
            raise ValueError(f"upscale.tile must be >= 0 (0: whole images), got {self.tile}")


@dataclass(frozen=True)
class EvalSection:
    enabled: bool = True  # false: no eval stage (upscale still runs)
    fid: bool = True  # FID/KID where the Inception weights resolve


@dataclass(frozen=True)
class PipelineFile:
    """A pipeline file as written, every section checked; `load_pipeline` resolves it into a `Pipeline`."""

    inputs: InputsSection = field(default_factory=InputsSection)  # [inputs]
    degrade: DegradeSection = field(default_factory=DegradeSection)  # [degrade]
    pairs: PairsSection = field(default_factory=PairsSection)  # [pairs]
    sr: SrSection = field(default_factory=SrSection)  # [sr]
    baseline: BaselineSection = field(default_factory=BaselineSection)  # [baseline]
    interpolate: InterpolateSection = field(default_factory=InterpolateSection)  # [interpolate]
    upscale: UpscaleSection = field(default_factory=UpscaleSection)  # [upscale]
    eval: EvalSection = field(default_factory=EvalSection)  # [eval]


# ---- the experiment it describes


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


def method_config(method: str) -> tuple[type, dict]:
    """(config class, presets) of a degradation learner."""
    from srpipe.degrade import config

    return (config.PDMConfig, config.PDM_PRESETS) if method == "pdm" else (config.DegradeConfig, config.PRESETS)


def read_pipeline_file(path: str | Path) -> PipelineFile:
    """The sections of a pipeline file, checked by the config validator."""
    p = Path(path)
    data = read_toml(p)
    base = data.get("baseline")
    if isinstance(base, dict) and "kinds" in base and "bicubic" in base:
        raise UsageError(
            f'pipeline {p}: [baseline] has both kinds and bicubic; keep kinds only (bicubic = true is kinds = ["bicubic"])'
        )
    try:
        return build_config(PipelineFile, toml=data)
    except UsageError as e:
        raise UsageError(f"pipeline {p}: {e}") from None


def _inputs(sec: InputsSection, p: Path) -> dict[str, Path]:
    """The given [inputs] folders, resolved against the pipeline file's folder (pairs_hr defaults to hr)."""
    inputs = {k: (p.parent / v).resolve() for k, v in asdict(sec).items() if v}
    inputs.setdefault("pairs_hr", inputs["hr"])
    tp = inputs.get("test_pairs")
    if tp is not None and not ((tp / LQ_DIR).is_dir() and (tp / GT_DIR).is_dir()):
        raise UsageError(
            f"pipeline {p}: [inputs] test_pairs = {str(tp)!r} must hold lr/ and hr/ folders "
            "(real LR/HR pairs with the same file names)"
        )
    return inputs


def _stage_config(p: Path, name: str, sec: DegradeSection | SrSection, cls: type, presets: dict):
    """A stage's config: its class's defaults < the section's preset < [<name>.config.*]."""
    if sec.preset not in presets:
        raise UsageError(f"pipeline {p}: {name}.preset must be one of {', '.join(presets)}, got {sec.preset!r}")
    try:
        return build_config(cls, preset=presets[sec.preset], toml=sec.config)
    except UsageError as e:
        raise UsageError(f"pipeline {p} [{name}.config]: {e}") from None


def load_pipeline(path: str | Path) -> Pipeline:
    """Parse and validate a pipeline file; stage configs are built (and checked) here."""
    from srpipe.degrade.config import DEFAULT_METHOD
    from srpipe.upscale.config import PRESETS as UPRESETS, UpscaleConfig

    p = Path(path)
    f = read_pipeline_file(p)
    inputs = _inputs(f.inputs, p)
    method = f.degrade.method or DEFAULT_METHOD
    degrade = _stage_config(p, "degrade", f.degrade, *method_config(method))
    scale = degrade.data.scale
    if not degrade.data.same_domain and "real_lr" not in inputs:
        raise UsageError(f"pipeline {p}: [inputs] real_lr is required (or set degrade.config.data.same_domain = true)")
    sr = None
    if f.sr.enabled:
        sr = _stage_config(p, "sr", f.sr, UpscaleConfig, UPRESETS)
        if sr.data.scale != scale:
            raise UsageError(
                f"pipeline {p}: sr scale x{sr.data.scale} differs from degrade scale x{scale}; "
                f"set [sr.config.data] scale = {scale}"
            )
    return Pipeline(
        path=p.resolve(),
        inputs=inputs,
        degrade=degrade,
        cleanup_factor=f.pairs.cleanup_factor,
        sr=sr,
        alphas=f.interpolate.alphas,
        tile=f.upscale.tile,
        eval=f.eval.enabled,
        fid=f.eval.fid,
        jpeg=f.pairs.stable_jpeg(),
        method=method,
        baselines=f.baseline.chosen() if sr is not None else (),
        blind_draws=f.baseline.blind.draws,
        blind_seed=f.baseline.blind.seed,
    )
