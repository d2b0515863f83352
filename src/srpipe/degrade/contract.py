"""What `degrade-train` needs and writes (DSGAN and pdm): the one place that says it.

The trainers, make-pairs, the pipeline's stages and the report read these instead of spelling them:

- `loss_terms`: the loss terms that contribute (the pipeline's stage table, the manifest);
- `pretrained`: the pretrained files a run uses (`srpipe.engine.weights` names); a pipeline stage's
  key holds their identity;
- `key_config`: the config fields that decide the result (all of them: one phase);
- `holds_out_real`: whether real LR images are held out from D (split.json, degradation.json);
- the run folder's names: `GENERATOR`, `LOG`, `SAMPLES` with `sample_file`/`SAMPLE_GLOB`, `SPLIT`,
  `DEGRADATION`, `JPEG`, pdm's `KERNEL*` files, and what `--restart` deletes (`run_files`).
"""

from __future__ import annotations

from srpipe.config import to_dict
from srpipe.degrade.config import DegradeConfig, PDMConfig
from srpipe.engine import runfolder

# ---- the run folder, both methods
CKPT = "ckpt"  # the loop's checkpoints
LOG = "log.csv"  # the CSV log
SAMPLES = "samples"  # sample grids (DSGAN): samples/step_<step>.png
GENERATOR = "generator.safetensors"  # the degradation model, written last: a finished run has it
SPLIT = runfolder.SPLIT  # the real LR images D trains on and those held out ({"train": [...], "held_out": [...]})
DEGRADATION = "degradation.json"  # realism of the synthetic LR on the held-out real LR (srpipe.eval.realism)
JPEG = "jpeg.json"  # the real LR's JPEG stage (also in the generator's header), for make-pairs --jpeg auto
# ---- pdm's record of what it learned
KERNEL = "kernel.json"  # kernel statistics, noise level, JPEG stage
KERNEL_PICTURE = "kernel.png"  # the magnified mean kernel and a few draws
KERNEL_MEAN = "kernel_mean.npy"  # the mean kernel (HR pixels)
KERNEL_DRAWS = "kernel_draws.npy"  # a few kernels drawn from the learned distribution

SAMPLE_GLOB = "step_*.png"  # every file `sample_file` names


def sample_file(step: int) -> str:
    """A sample grid's name inside `SAMPLES`; `SAMPLE_GLOB` finds them, sorted by step."""
    return f"step_{step:08d}.png"


def method_of(cfg: DegradeConfig | PDMConfig) -> str:
    """The learner a config belongs to: `dsgan` or `pdm` (srpipe.degrade.config.METHODS)."""
    return "pdm" if isinstance(cfg, PDMConfig) else "dsgan"


def run_files(method: str) -> tuple[str, ...]:
    """What `--restart` deletes from a run folder of `method`."""
    dsgan = (CKPT, LOG, SAMPLES, GENERATOR, DEGRADATION, JPEG)
    return dsgan + (KERNEL,) if method == "pdm" else dsgan


# ---- the pretrained files
LPIPS_BACKBONES = {"lpips-alex": "alexnet", "lpips-vgg": "vgg16"}  # DSGAN's perceptual loss: required when on
REALISM = "inception"  # KID/FID rows of degradation.json: used when present


def holds_out_real(cfg: DegradeConfig | PDMConfig) -> bool:
    """Whether some real LR images are kept from D (`data.val_fraction`; a same-domain run has none)."""
    return cfg.data.val_fraction > 0 and not cfg.data.same_domain


def uses_lpips(cfg: DegradeConfig | PDMConfig) -> bool:
    """Whether DSGAN's LPIPS perceptual term is on (pdm has none)."""
    loss = cfg.loss
    return isinstance(cfg, DegradeConfig) and loss.perceptual != "none" and loss.w_perceptual > 0


def pretrained(cfg: DegradeConfig | PDMConfig) -> tuple[str, ...]:
    """The pretrained files a run uses: LPIPS' backbone for DSGAN's perceptual loss, Inception for
    the KID/FID rows of degradation.json (only with held-out real LR)."""
    out = [LPIPS_BACKBONES[cfg.loss.perceptual]] if uses_lpips(cfg) else []
    if holds_out_real(cfg):
        out.append(REALISM)
    return tuple(out)


def loss_terms(cfg: DegradeConfig | PDMConfig) -> list[str]:
    """The terms that contribute, with their weights."""
    if isinstance(cfg, DegradeConfig):
        return cfg.loss.active()
    loss = cfg.loss
    on = f"high-pass x{loss.d_highpass:g}" if loss.d_highpass else "LR"
    out = [f"adversarial({loss.gan}, patch D on {on}) x{loss.w_adv:g}"] if loss.w_adv > 0 else []
    if cfg.noise.w_energy > 0:
        out.append(f"noise energy x{cfg.noise.w_energy:g}")
    if loss.w_spectrum > 0:
        out.append(f"log spectrum x{loss.w_spectrum:g}")
    return out


def key_config(cfg: DegradeConfig | PDMConfig) -> dict:
    """The config fields that decide the result, as plain data: all of them."""
    return to_dict(cfg)
