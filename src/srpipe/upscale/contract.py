"""What `sr-train` needs and writes, phase by phase: the one place that says it.

The trainer, `interop`, the pipeline's stages and the report read these instead of spelling them:

- `loss_terms`: the loss terms a phase optimises (the first line of a run, the pipeline's stage table);
- `pretrained`: the pretrained files a phase uses (`srpipe.engine.weights` names); a pipeline stage's
  key holds their identity, so a stage run without AlexNet is stale once AlexNet arrives;
- `key_config`: the config fields that decide a phase's result (a pipeline stage's key): the PSNR
  phase leaves out what only the GAN phase reads, so editing the GAN recipe does not retrain it;
- the run folder's names: `weights_file`, `log_file`, `SAMPLES` with `sample_file`/`sample_glob`,
  `BEST`, `RUN_FILES`; and `alpha_file`/`ALPHA_GLOB`/`alpha_of` for `interpolate`'s sweep files.
"""

from __future__ import annotations

import re

from srpipe.config import to_dict
from srpipe.upscale.config import UpscaleConfig

PHASES = ("psnr", "gan")  # training order: the GAN phase starts from the PSNR model
MODEL_ORDER = ("gan", "psnr")  # the model of a run folder: the GAN phase's when it exists, else the PSNR phase's

# ---- the run folder
CKPT = "ckpt"  # ckpt/<phase>/: the loop's checkpoints (`srpipe.engine.loop.Checkpoint`)
SAMPLES = "samples"  # sample grids of the held-out crops (bicubic | SR | HR), one per validation
BEST = "best.json"  # per phase, the step whose validation was best (LPIPS when measured, else PSNR-Y)


def weights_file(phase: str) -> str:
    """The phase's EMA weights (`.safetensors`, the record in the header): `psnr.safetensors`, `gan.safetensors`."""
    return f"{phase}.safetensors"


def pth_file(phase: str) -> str:
    """BasicSR's `.pth` copy of the phase's weights (written with `export_pth`)."""
    return f"{phase}.pth"


def log_file(phase: str) -> str:
    """The phase's CSV log: `log_psnr.csv`, `log_gan.csv`."""
    return f"log_{phase}.csv"


def sample_file(phase: str, step: int) -> str:
    """A sample grid's name inside `SAMPLES`; `sample_glob(phase)` finds them, sorted by step."""
    return f"{phase}_{step:08d}.png"


def sample_glob(phase: str) -> str:
    return f"{phase}_*.png"


# what --restart deletes from a run folder
RUN_FILES = (CKPT, *map(log_file, PHASES), SAMPLES, BEST, *map(weights_file, PHASES), *map(pth_file, PHASES))


ALPHA_PREFIX = "alpha_"  # interpolated models' files, and the pipeline's names of them (the files' stems)


def alpha_file(alpha: float) -> str:
    """`interpolate --alpha A:B:STEP`'s file of one alpha in its output folder."""
    return f"{ALPHA_PREFIX}{alpha:.2f}.safetensors"


ALPHA_GLOB = f"{ALPHA_PREFIX}*.safetensors"  # every file `alpha_file` names


def alpha_of(stem: str) -> float | None:
    """The alpha of a file `alpha_file` named, from its stem (`alpha_0.50` -> 0.5); None for any other name."""
    m = re.fullmatch(re.escape(ALPHA_PREFIX) + r"(\d+(?:\.\d+)?)", stem)
    return float(m.group(1)) if m else None


# ---- the pretrained files
PERCEPTUAL = "vgg19"  # the GAN phase's perceptual loss (VGG19 conv5_4): needed when the loss is on
LPIPS = "alexnet"  # LPIPS of the GAN phase's validation: used when present, it picks best.json's step


def uses_perceptual(cfg: UpscaleConfig) -> bool:
    """Whether the GAN phase has its VGG19 perceptual term."""
    return cfg.gan.perceptual == "vgg19" and cfg.gan.w_perceptual > 0


def pretrained(cfg: UpscaleConfig, phase: str) -> tuple[str, ...]:
    """The pretrained files `phase` uses: VGG19 (`PERCEPTUAL`, required) for the perceptual loss,
    AlexNet (`LPIPS`, optional) for validation when pairs are held out. The PSNR phase uses none."""
    if phase == "psnr":
        return ()
    out = []
    if uses_perceptual(cfg):
        out.append(PERCEPTUAL)
    if cfg.data.val_fraction > 0:
        out.append(LPIPS)
    return tuple(out)


def loss_terms(cfg: UpscaleConfig, phase: str) -> list[str]:
    """The terms `phase` optimises, with their weights: PSNR phase L1; GAN phase pixel (low-passes
    with ESRGAN-FS), VGG19 perceptual and RaGAN where their weights are on."""
    if phase == "psnr":
        return ["L1"]
    g, fs = cfg.gan, cfg.fs
    terms = [f"L1 x{g.w_pixel:g}" + (f" on {fs.filter} k={fs.kernel} low-passes" if fs.enabled else "")]
    if uses_perceptual(cfg):
        terms.append(f"VGG19 conv5_4 x{g.w_perceptual:g}")
    if g.w_adv > 0:
        high = ", high-pass input" if fs.enabled else ""
        terms.append(f"RaGAN ({cfg.model.discriminator} D{high}) x{g.w_adv:g}")
    return terms


# ---- what decides a phase's result
GAN_SECTIONS = ("gan", "fs")  # config sections only the GAN phase reads
GAN_MODEL_FIELDS = ("discriminator", "d_features", "d_layers")  # model.* fields only the GAN phase reads


def key_config(cfg: UpscaleConfig, phase: str) -> dict:
    """The config as plain data, less what `phase` does not read (the GAN phase reads all of it)."""
    full = to_dict(cfg)
    if phase == "gan":
        return full
    out = {k: v for k, v in full.items() if k not in GAN_SECTIONS}
    out["model"] = {k: v for k, v in full["model"].items() if k not in GAN_MODEL_FIELDS}
    return out
