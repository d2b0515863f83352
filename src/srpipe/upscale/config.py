"""ESRGAN configuration. Defaults are the `paper` recipe: the ESRGAN paper's networks and loss
weights with BasicSR's step counts (`train_RRDBNet_PSNR_x4.yml`, `train_ESRGAN_x4.yml`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal


@dataclass(frozen=True)
class DataConfig:
    scale: int = 4  # HR/LR factor: 1, 2, 4 (interoperable) or 3 (srpipe only)
    hr_patch: int = 128  # HR crop size (ESRGAN/BasicSR: 128, i.e. 32 LR pixels at x4)
    val_fraction: float = 0.1  # share of pairs held out for validation (at least one when > 0)
    flips: bool = True  # random horizontal flips (BasicSR use_hflip)
    rotations: bool = True  # random 90-degree rotations (BasicSR use_rot)

    def __post_init__(self):
        if self.scale not in (1, 2, 3, 4):
            raise ValueError(f"data.scale must be 1, 2, 3 or 4, got {self.scale}")
        if self.hr_patch % self.scale:
            raise ValueError(f"data.hr_patch ({self.hr_patch}) must be a multiple of data.scale ({self.scale})")
        if self.scale in (1, 2) and self.hr_patch % 4:
            # x1/x2 pixel-unshuffle the LR crop by 4/2 (BasicSR), so the crop must divide evenly
            raise ValueError(f"data.hr_patch ({self.hr_patch}) must be a multiple of 4 at scale {self.scale}")
        if not 0 <= self.val_fraction < 1:
            raise ValueError(f"data.val_fraction must be in [0, 1), got {self.val_fraction}")

    @property
    def lr_patch(self) -> int:
        return self.hr_patch // self.scale


@dataclass(frozen=True)
class ModelConfig:
    num_feat: int = 64  # RRDBNet width (paper: 64)
    num_block: int = 23  # RRDB blocks (paper: 23)
    num_grow_ch: int = 32  # dense growth channels (paper: 32; spandrel assumes 32, so never change it for export)
    discriminator: Literal["vgg", "patch"] = "vgg"  # ESRGAN's VGG-style D (128x128 only) or a PatchGAN
    d_features: int = 64  # discriminator first-layer width (paper: 64)
    d_layers: int = 3  # stride-2 layers of the patch discriminator (Real-SR: 3)


@dataclass(frozen=True)
class PsnrConfig:
    """Phase 1: L1 only (the "RRDB_PSNR" model the GAN starts from)."""

    iters: int = 1_000_000  # BasicSR train_RRDBNet_PSNR_x4.yml: 1M iterations
    lr: float = 2e-4  # Adam (ESRGAN paper Sec. 4.1)
    betas: tuple[float, float] = (0.9, 0.999)  # Adam betas (ESRGAN paper)
    milestones: tuple[int, ...] = (200_000, 400_000, 600_000, 800_000)  # lr halved every 200k (paper)
    gamma: float = 0.5  # lr factor at each milestone

    def __post_init__(self):
        if self.iters < 0:
            raise ValueError("psnr.iters must be >= 0")


@dataclass(frozen=True)
class GanConfig:
    """Phase 2: pixel + perceptual + RaGAN, initialised from the PSNR model."""

    iters: int = 400_000  # BasicSR train_ESRGAN_x4.yml: 400k iterations
    lr_g: float = 1e-4  # Adam lr for G (paper)
    lr_d: float = 1e-4  # Adam lr for D (paper)
    betas: tuple[float, float] = (0.9, 0.999)  # Adam betas for G and D
    milestones: tuple[int, ...] = (50_000, 100_000, 200_000, 300_000)  # lr halved here (paper)
    gamma: float = 0.5  # lr factor at each milestone
    w_pixel: float = 1e-2  # L1 weight (paper: eta = 1e-2)
    w_perceptual: float = 1.0  # VGG19 conv5_4 L1 weight (BasicSR: 1)
    w_adv: float = 5e-3  # RaGAN weight (paper: lambda = 5e-3)
    perceptual: Literal["vgg19", "none"] = "vgg19"  # "none" skips the VGG19 backbone entirely

    def __post_init__(self):
        if self.iters < 0:
            raise ValueError("gan.iters must be >= 0")


@dataclass(frozen=True)
class FsConfig:
    """Frequency separation (ESRGAN-FS, `--fs`): low-pass pixel loss, high-pass-only discriminator."""

    enabled: bool = False  # off: plain ESRGAN
    filter: Literal["box", "gaussian"] = "box"  # ESRGAN-FS default: box
    kernel: int = 9  # ESRGAN-FS default: 9; Gaussian sigma = (kernel-1)/6

    def __post_init__(self):
        if self.kernel % 2 == 0 or self.kernel < 1:
            raise ValueError(f"fs.kernel must be odd, got {self.kernel}")


@dataclass(frozen=True)
class UpscaleConfig:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    psnr: PsnrConfig = field(default_factory=PsnrConfig)
    gan: GanConfig = field(default_factory=GanConfig)
    fs: FsConfig = field(default_factory=FsConfig)
    batch: int = 16  # pairs per step, both phases (paper: 16)
    ema_decay: float = 0.999  # EMA of G saved as the model weights (BasicSR model_ema)
    seed: int = 0  # seeds weights, crops and the held-out split

    def __post_init__(self):
        if self.batch < 1:
            raise ValueError("batch must be >= 1")
        if not 0 <= self.ema_decay < 1:
            raise ValueError(f"ema_decay must be in [0, 1), got {self.ema_decay}")
        if self.model.discriminator == "vgg" and self.data.hr_patch not in (128, 256):
            raise ValueError(
                f"the vgg discriminator needs data.hr_patch 128 or 256 (got {self.data.hr_patch}); "
                "set model.discriminator=patch for other sizes"
            )
        if self.model.discriminator == "patch" and self.data.hr_patch < 2 ** (self.model.d_layers + 2):
            raise ValueError(
                f"data.hr_patch {self.data.hr_patch} is too small for a patch discriminator with "
                f"{self.model.d_layers} layers (needs >= {2 ** (self.model.d_layers + 2)})"
            )

    def generator_args(self) -> dict:
        """Keyword arguments of `RRDBNet` (stored in weights file headers)."""
        m = self.model
        return {
            "scale": self.data.scale,
            "num_in_ch": 3,
            "num_out_ch": 3,
            "num_feat": m.num_feat,
            "num_block": m.num_block,
            "num_grow_ch": m.num_grow_ch,
        }

    def discriminator_args(self) -> dict:
        m = self.model
        if m.discriminator == "vgg":
            return {"num_in_ch": 3, "num_feat": m.d_features, "input_size": self.data.hr_patch}
        return {"num_in_ch": 3, "num_feat": m.d_features, "n_layers": m.d_layers}


PRESETS: dict[str, dict] = {
    "paper": {},
    # About three minutes on a 2-core CPU and still beats bicubic: a narrow, shallow RRDBNet (growth
    # stays 32 so spandrel loads the result), small patches, a patch D (VGG-128 needs 128 px), a
    # higher lr so a few hundred steps get somewhere, and a short EMA so the saved weights follow.
    # Measured on the demo pipeline's realistic (DSGAN) pairs, Set5 test pairs: PSNR-Y 26.16 dB vs
    # bicubic 25.36 after 1500 steps (lr 1e-3 halved at 1000), only +0.13 dB after 600 steps.
    # Perceptual is off unless asked for (its VGG19 costs more than this generator), so the GAN
    # phase keeps L1 at weight 1 (Real-ESRGAN's) to anchor content: with the paper's 1e-2 and no
    # perceptual term, RaGAN alone drifts into colour artefacts within 100 steps.
    "tiny": {
        "data": {"hr_patch": 64},
        "model": {"num_feat": 32, "num_block": 2, "discriminator": "patch", "d_features": 32},
        "psnr": {"iters": 1500, "lr": 1e-3, "milestones": [1000]},
        "gan": {"iters": 100, "lr_g": 1e-4, "lr_d": 1e-4, "milestones": [], "perceptual": "none", "w_pixel": 1.0},
        "batch": 8,
        "ema_decay": 0.9,
    },
}
