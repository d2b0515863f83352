"""DSGAN configuration. Defaults are the `paper` recipe: the official code's `train.py` flags
(ManuelFritsche/real-world-sr, dsgan/) and the paper's design notes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

# The degradation learners, and the one `degrade-train --method` and the pipeline's [degrade] method
# use when none is named: the one that closed more of the SR gap on bench/quality.py (README "Quality").
METHODS = ("dsgan", "pdm")
DEFAULT_METHOD = "dsgan"


@dataclass(frozen=True)
class DataConfig:
    scale: int = 4  # HR/LR factor; the official code allowed 4 only, we allow 2, 3, 4
    hr_crop: int = 512  # HR crop size; the generator input is hr_crop/scale (official: 512 -> 128)
    same_domain: bool = False  # official mode: D's real samples are native-resolution crops of the HR images
    val_fraction: float = 0.1  # share of real-LR images held out for evaluation (never seen by D)
    flips: bool = False  # random horizontal flips (official default: off)
    rotations: bool = False  # random 90-degree rotations (official default: off)

    def __post_init__(self):
        if self.scale not in (2, 3, 4):
            raise ValueError(f"data.scale must be 2, 3 or 4, got {self.scale}")
        if self.hr_crop % self.scale:
            raise ValueError(f"data.hr_crop ({self.hr_crop}) must be a multiple of data.scale ({self.scale})")
        if not 0 <= self.val_fraction < 1:
            raise ValueError(f"data.val_fraction must be in [0, 1), got {self.val_fraction}")

    @property
    def lr_crop(self) -> int:
        return self.hr_crop // self.scale


@dataclass(frozen=True)
class ModelConfig:
    features: int = 64  # generator width (paper: 64)
    res_blocks: int = 8  # generator residual blocks (paper: 8)
    d_features: int = 64  # discriminator first-layer width; then x2, x4 (paper: 64, 128, 256)
    noise_channels: int = 0  # standard-normal input maps of the generator (paper: 0; see DSGANGenerator)
    residual: bool = False  # generator outputs x + correction instead of sigmoid(...) (paper: False)
    # Spectral norm on D's convolutions and no batch norm (Miyato et al. 2018, SN-GAN) (paper: False):
    # bounds D's Lipschitz constant, so it cannot sharpen its decision on a handful of real images.
    d_spectral_norm: bool = False


@dataclass(frozen=True)
class LossConfig:
    w_color: float = 1.0  # L1 between low-passes of G(x) and x (official train.py: --w_col 1)
    w_adv: float = 0.005  # adversarial weight on high-passes (official train.py: --w_tex 0.005)
    w_perceptual: float = 0.01  # perceptual weight (official train.py: --w_per 0.01)
    perceptual: Literal["lpips-alex", "lpips-vgg", "none"] = "lpips-alex"  # official: LPIPS AlexNet
    filter: Literal["box", "gaussian"] = "box"  # low-pass kind for both colour loss and D's high-pass
    kernel: int = 5  # low-pass window (official: 5); Gaussian sigma = kernel/6 as in the official code
    # Scale of the high-pass D sees (official: 1). Sensor noise of a few levels is a +-0.01 ripple on
    # D's input, far below its first layer's biases, so a small D trained briefly stays linear in it
    # and cannot tell noisy from clean; a gain puts the ripple where LeakyReLU bends.
    hp_gain: float = 1.0
    # How D normalises real and synthetic batches (official: "separate" forward passes). Batch norm
    # over a batch of one kind removes what sets the kinds apart in mean (a global noise level), so
    # "joint" runs real and synthetic through D in one batch, for D's update and G's alike.
    d_batch: Literal["separate", "joint"] = "separate"

    def __post_init__(self):
        if self.kernel % 2 == 0 or self.kernel < 1:
            raise ValueError(f"loss.kernel must be odd, got {self.kernel}")
        if self.hp_gain <= 0:
            raise ValueError(f"loss.hp_gain must be > 0, got {self.hp_gain}")

    def active(self) -> list[str]:
        """Names of the loss terms that contribute, for every output to state."""
        out = []
        if self.w_color > 0:
            out.append(f"color(L1 low-pass {self.filter} k={self.kernel}) x{self.w_color:g}")
        if self.w_adv > 0:
            out.append(f"adversarial(high-pass D) x{self.w_adv:g}")
        if self.perceptual != "none" and self.w_perceptual > 0:
            out.append(f"perceptual({self.perceptual}) x{self.w_perceptual:g}")
        return out


@dataclass(frozen=True)
class OptimConfig:
    lr: float = 2e-4  # Adam for G and D (official)
    beta1: float = 0.5  # Adam beta1 (official: 0.5, usual for GANs)
    beta2: float = 0.999  # Adam beta2
    batch: int = 16  # official --batch_size 16
    iters: int = 80_000  # official: 300 epochs of ~one crop per image; 80k steps at batch 16 (design notes)
    decay_start: float = 0.5  # fraction of iters after which lr decays linearly to 0 (official: last 150 of 300 epochs)
    d_lr_scale: float = 1.0  # D's lr = d_lr_scale * lr, same schedule (official: 1; TTUR, Heusel et al. 2017)

    def __post_init__(self):
        if self.iters < 1 or self.batch < 1:
            raise ValueError("optim.iters and optim.batch must be >= 1")
        if self.d_lr_scale <= 0:
            raise ValueError(f"optim.d_lr_scale must be > 0, got {self.d_lr_scale}")
        if not 0 <= self.decay_start <= 1:
            raise ValueError(f"optim.decay_start must be in [0, 1], got {self.decay_start}")


@dataclass(frozen=True)
class JpegConfig:
    # Compress G's output with a differentiable JPEG (srpipe.degrade.diffjpeg) at the qualities
    # estimated from the real LR before D and the colour loss see it, when the real LR shows a JPEG
    # stage. D then judges what make-pairs writes (it applies real JPEG after G), and G learns the
    # noise before compression instead of imitating the blocks, which a stride-1 network cannot
    # place on a fixed 8-px grid anyway.
    in_loop: bool = False  # paper: no JPEG stage at all


@dataclass(frozen=True)
class DegradeConfig:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    jpeg: JpegConfig = field(default_factory=JpegConfig)
    seed: int = 0  # seeds weights, crops and the held-out split

    def __post_init__(self):
        # The colour loss low-passes without padding (official AvgPool2d): a smaller LR crop leaves
        # nothing to compare and torch fails with an obscure pooling error.
        if self.data.lr_crop < self.loss.kernel:
            raise ValueError(
                f"data.hr_crop / data.scale = {self.data.lr_crop} LR pixels is smaller than the colour-loss "
                f"window loss.kernel = {self.loss.kernel}; raise data.hr_crop to at least "
                f"{self.loss.kernel * self.data.scale}"
            )
        # LPIPS' AlexNet/VGG pools its input down 16-32x: smaller LR crops crash inside lpips.
        if self.loss.perceptual != "none" and self.loss.w_perceptual > 0 and self.data.lr_crop < 32:
            raise ValueError(
                f"the {self.loss.perceptual} perceptual loss needs LR crops of at least 32 px, but "
                f"data.hr_crop / data.scale = {self.data.lr_crop}; raise data.hr_crop or set loss.perceptual=none"
            )


PRESETS: dict[str, dict] = {
    "paper": {},
    # Minutes on a 2-core CPU, tuned on bench/quality.py (CPU mode): small nets, small crops, a higher
    # lr so a few hundred steps get somewhere, perceptual off. With the paper's settings at this
    # budget D never tells sigma-8 sensor noise from a clean LR (its losses stay at log 2) and G adds
    # none (noise 0.4 levels against the real 8.2). What makes it learn the noise level (7.0 levels):
    # a noise input and a residual output for G (it only shapes noise instead of inventing it), D's
    # input high-pass scaled by 8 and real and synthetic normalised in one batch (so D can see a
    # noise level at all); JPEG in the loop for compressed targets. The paper's adversarial weight
    # stays: 0.02 learned the noise better (8.5) but collapsed on JPEG q30 targets (colour loss 0.05).
    "tiny": {
        "data": {"hr_crop": 128},
        "model": {"features": 32, "res_blocks": 4, "d_features": 32, "noise_channels": 3, "residual": True},
        "loss": {"perceptual": "none", "hp_gain": 8.0, "d_batch": "joint"},
        "optim": {"lr": 1e-3, "batch": 8, "iters": 300, "decay_start": 0.5},
        "jpeg": {"in_loop": True},
    },
}


# ------------------------------------------------------------------------------------------ pdm


@dataclass(frozen=True)
class KernelConfig:
    # Kernel side in HR pixels; 0: srpipe.io.kernels.kernel_size(scale) = 5 * scale, whose parity puts
    # its centre on the LR pixel centre as bicubic defines it (PDM: 21 at x4, half a pixel off that grid);
    # 7 * scale for the "sharpened" form, whose unsharp mask reaches 2 LR pixels beyond the blur.
    size: int = 0
    z_dim: int = 8  # random code per image; one model holds a distribution of kernels (PDM: 3 or 64)
    hidden: int = 64  # width of the code -> kernel MLP (PDM: 64, a 1x1-conv ResNet)
    # "softmax": non-negative taps (PDM), optics only; "signed": Gaussian-initialised taps plus a
    # zero-sum learned correction, free to go negative, so one kernel can also express the unsharp
    # masking camera pipelines apply after the optics.
    # "gaussian": an anisotropic Gaussian (sigma_x, sigma_y, angle from z): few degrees of freedom.
    # "sharpened": that Gaussian, then an unsharp mask on the LR grid (amount and radius from z), folded
    # into one kernel: the optics and the camera's sharpening, five degrees of freedom.
    form: Literal["softmax", "signed", "gaussian", "sharpened"] = "softmax"
    # Starting sigma in HR pixels; 0: 0.4 * scale, the Gaussian closest to the bicubic kernel (L2,
    # srpipe.io.kernels). PDM's zero-initialised softmax starts as a near-uniform box instead.
    init_sigma: float = 0.0

    def __post_init__(self):
        if self.size < 0 or self.z_dim < 1 or self.hidden < 1 or self.init_sigma < 0:
            raise ValueError("kernel.size, kernel.init_sigma must be >= 0 and kernel.z_dim, kernel.hidden >= 1")


@dataclass(frozen=True)
class NoiseConfig:
    features: int = 32  # width of the noise CNN (PDM: 64)
    layers: int = 3  # 3x3 convolutions; receptive radius = layers LR pixels
    random_channels: int = 3  # standard-normal maps per pixel (PDM's shipped configs: one value per image)
    max_level: float = 0.1  # bound of the noise, tanh-scaled, in [0, 1] units (0.1 = 25 8-bit levels)
    w_energy: float = 1.0  # weight of the mean squared noise (PDM: 1-100): no noise unless D asks for it

    def __post_init__(self):
        if self.layers < 1 or self.features < 1 or self.random_channels < 1 or self.max_level < 0:
            raise ValueError("noise.layers, noise.features, noise.random_channels must be >= 1, noise.max_level >= 0")


@dataclass(frozen=True)
class PDMLossConfig:
    w_adv: float = 1.0  # LSGAN weight on G (PDM: 1)
    gan: Literal["lsgan", "ragan"] = "lsgan"  # PDM: LSGAN
    d_features: int = 64  # patch D width (PDM: 64)
    d_layers: int = 3  # stride-2 stages of D; receptive field about 4 * 2**layers LR pixels
    spectral_norm: bool = True  # spectral norm on D's convolutions (Miyato et al. 2018); PDM: instance norm
    # Gain of the high-pass (x - box5(x)) D sees instead of the LR itself; 0: the LR itself (PDM).
    # Blur and noise live in the high band; the low band carries the scenes' colours, which differ
    # between two unpaired photo sets and give D an easier, irrelevant cue.
    d_highpass: float = 0.0
    # Weight of the log power-spectrum match between synthetic and real LR crops (batch means of the
    # 2-D spectrum of the luma, Hann-windowed); 0: off (PDM has none). Two sets of natural photos
    # share an average spectrum, so the LR's spectrum is the kernel's response: a direct, stable
    # signal for the blur that a small D trained briefly does not give reliably.
    w_spectrum: float = 0.0


@dataclass(frozen=True)
class PDMOptimConfig:
    lr: float = 2e-4  # Adam, G and D (PDM)
    lr_kernel: float = 0.0  # Adam lr of the kernel MLP; 0: same as lr
    lr_d: float = 0.0  # Adam lr of D; 0: same as lr
    beta1: float = 0.5  # Adam beta1 (PDM's configs: 0.5)
    beta2: float = 0.999  # Adam beta2
    batch: int = 32  # PDM: 32
    iters: int = 200_000  # PDM: 200k
    decay_start: float = 0.5  # fraction of iters after which lr decays linearly to 0
    grad_clip: float = 50.0  # max grad norm of G (PDM: 50); 0: off

    def __post_init__(self):
        if self.iters < 1 or self.batch < 1:
            raise ValueError("optim.iters and optim.batch must be >= 1")
        if not 0 <= self.decay_start <= 1:
            raise ValueError(f"optim.decay_start must be in [0, 1], got {self.decay_start}")


@dataclass(frozen=True)
class PDMConfig:
    """`degrade-train --method pdm`: LR = JPEG(round8((HR * k)↓s + n)), learned from unpaired folders."""

    data: DataConfig = field(default_factory=DataConfig)  # the presets set hr_crop 128 (PDM: HR 128 / LR 32)
    kernel: KernelConfig = field(default_factory=KernelConfig)
    noise: NoiseConfig = field(default_factory=NoiseConfig)
    loss: PDMLossConfig = field(default_factory=PDMLossConfig)
    optim: PDMOptimConfig = field(default_factory=PDMOptimConfig)
    jpeg: JpegConfig = field(default_factory=lambda: JpegConfig(in_loop=True))  # the estimated JPEG stage in the loop
    seed: int = 0  # seeds weights, crops and the held-out split

    def __post_init__(self):
        if self.data.same_domain:
            raise ValueError("data.same_domain is a DSGAN mode; pdm needs a real-LR folder")
        if self.kernel.size and (self.kernel.size - self.data.scale) % 2:
            raise ValueError(
                f"kernel.size {self.kernel.size} cannot be centred on the x{self.data.scale} LR grid: "
                f"use a size of the parity of {self.data.scale} (or 0 for the default)"
            )

    @property
    def kernel_size(self) -> int:
        return self.kernel.size or (7 if self.kernel.form == "sharpened" else 5) * self.data.scale

    @property
    def init_sigma(self) -> float:
        return self.kernel.init_sigma or 0.4 * self.data.scale


PDM_PRESETS: dict[str, dict] = {
    "paper": {"data": {"hr_crop": 128}},  # PDM: HR 128 / LR 32 (DataConfig's 512 is DSGAN's)
    # Minutes on a 2-core CPU. Measured 2026-12-05 on a known kernel (anisotropic Gaussian 2.6 x 1.3
    # HR px at 30 deg, the real LR made from disjoint photos, 600 steps; kernel error, bicubic's 0.084):
    # PDM's softmax taps overshoot to sigma 4.8-5.8 (error 0.23-0.34: a weak D's noisy gradients,
    # normalised by Adam, random-walk hundreds of logits into a flat kernel); a Gaussian kernel 0.093;
    # a Gaussian kernel with D on the high-pass 0.036 (sigma 3.9 x 1.4 at 33 deg, still too wide); plus
    # the spectrum match at weight 1: 0.029 (2.8 x 1.6 at 34 deg), 0.030 with noise of sigma 3 in the
    # real LR. The spectrum match alone: 0.089 (4.0 x 2.4; two photo sets' spectra differ in slope),
    # at weight 10: 0.083. Each holds the other's bias in check.
    "tiny": {
        "data": {"hr_crop": 128},
        "kernel": {"form": "gaussian"},
        "noise": {"features": 16},
        "loss": {"d_features": 32, "d_highpass": 4.0, "w_spectrum": 1.0},
        "optim": {"lr": 1e-3, "batch": 16, "iters": 600, "decay_start": 0.6},
    },
}
