"""The `pdm` degradation model: an explicit blur kernel, noise and JPEG, learned from unpaired data.

After Luo et al., "Learning the Degradation Distribution for Blind Image Super-Resolution" (CVPR
2022): LR = JPEG(round8((HR * k)↓s + n)). The kernel, applied to the HR image with stride s, is
the only path from HR to LR, so whatever blur the real LR shows has to be learned by k; the noise
network sees the blurred LR (detached, so its loss cannot move the kernel) and per-pixel random maps.

Pure modules: no I/O, no losses. Keyword-only arguments, recorded in weights file headers.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from srpipe.io.kernels import blur_down, gaussian_kernel

# Head outputs of the parametric kernel forms (the free forms have one per tap).
PARAMETRIC = {"gaussian": 3, "sharpened": 5}
# Starting unsharp amount of the "sharpened" form (none), and the most it may learn (cameras: about 0.3-1).
USM_START = 0.0
USM_MAX = 4.0
# Reach of its unsharp mask in LR pixels: 2 radii at the widest radius it may learn (1.5 LR px would be
# cut at 1.3 sigma; at the ~1 px that cameras use, 2 sigma).
USM_REACH = 2


class KernelNet(nn.Module):
    """Random code z -> a blur kernel that sums to one and is centred on the LR pixel.

    An MLP maps z to one value per tap. Its last layer starts at zero with a bias that makes every
    z give a Gaussian of `init_sigma` (for "softmax" the bias is the Gaussian's log, for "signed" the
    Gaussian is added and the layer's output, minus its mean, is a correction). Finally the kernel
    is averaged with its 180-degree rotation: a point-symmetric kernel has its centre of mass
    exactly on the centre, so the model cannot learn a shift (a shifted kernel teaches SR to shift).

    Args:
        size: kernel side in HR pixels (`srpipe.io.kernels.kernel_size`).
        z_dim: code length; hidden: MLP width; init_sigma: starting Gaussian sigma (HR pixels).
        form: "softmax" (non-negative taps, PDM), "signed" (taps may go negative: sharpening),
            "gaussian" (an anisotropic Gaussian: three numbers per code, so a weak or noisy
            discriminator signal cannot random-walk hundreds of taps into a wide, flat kernel) or
            "sharpened" (that Gaussian, then an unsharp mask on the LR grid as camera pipelines apply
            after the optics: five numbers per code, folded into one HR kernel, see `_sharpen`).
        scale: the LR grid's step in HR pixels (only "sharpened" uses it).
    Shapes:
        z: (B, z_dim) -> (B, size, size), each summing to 1.
    """

    def __init__(
        self,
        *,
        size: int,
        z_dim: int = 8,
        hidden: int = 64,
        init_sigma: float = 1.6,
        form: str = "softmax",
        scale: int = 4,
    ):
        super().__init__()
        if form not in ("softmax", "signed", "gaussian", "sharpened"):
            raise ValueError(f"kernel form must be softmax, signed, gaussian or sharpened, got {form!r}")
        self.size, self.z_dim, self.form, self.scale = size, z_dim, form, scale
        self.mlp = nn.Sequential(
            nn.Linear(z_dim, hidden), nn.LeakyReLU(0.2), nn.Linear(hidden, hidden), nn.LeakyReLU(0.2)
        )
        self.head = nn.Linear(hidden, PARAMETRIC.get(form, size * size))
        nn.init.zeros_(self.head.weight)
        g = gaussian_kernel(size, init_sigma).reshape(-1)
        if form in PARAMETRIC:  # log sigma_x, log sigma_y, angle (+ unsharp amount, log radius in LR px)
            start = [math.log(init_sigma), math.log(init_sigma), 0.0] + [USM_START, 0.0] * (form == "sharpened")
            self.head.bias.data.copy_(torch.tensor(start))
            r = torch.arange(size, dtype=torch.float32) - (size - 1) / 2
            self.register_buffer("base", torch.stack(torch.meshgrid(r, r, indexing="ij")), persistent=False)
        elif form == "softmax":
            self.head.bias.data.copy_(g.clamp(min=1e-12).log())
            self.register_buffer("base", torch.zeros(size * size), persistent=False)
        else:
            nn.init.zeros_(self.head.bias)
            self.register_buffer("base", g.clone(), persistent=False)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        out = self.head(self.mlp(z))
        if self.form == "gaussian":
            return self._gaussian(out)
        if self.form == "sharpened":
            return self._sharpen(self._gaussian(out), *_unsharp_params(out))
        if self.form == "softmax":
            k = torch.softmax(out, dim=-1)
        else:
            k = self.base + out - out.mean(-1, keepdim=True)  # sums to one whatever the MLP says
        k = k.view(-1, self.size, self.size)
        return 0.5 * (k + k.flip(-1, -2))

    def unsharp(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The "sharpened" form's unsharp mask per code: (amount (B,), radius in LR px (B,)), as applied."""
        return _unsharp_params(self.head(self.mlp(z)))

    def centre_kernel(self) -> torch.Tensor:
        """The kernel of the all-zero code (the distribution's centre, no random draw): (size, size)."""
        return self(torch.zeros(1, self.z_dim, device=self.head.weight.device))[0]

    def _gaussian(self, params: torch.Tensor) -> torch.Tensor:
        """Anisotropic Gaussians from (log sigma_x, log sigma_y, angle) per row: point-symmetric by construction."""
        # sigmas kept where the sampled Gaussian is defined: below 0.25 px it is one tap (and its
        # gradient vanishes), beyond a third of the window it is cut off
        sig = params[:, :2].clamp(math.log(0.25), math.log(self.size / 3)).exp()
        sx, sy = sig[:, 0, None, None], sig[:, 1, None, None]
        c, s = params[:, 2].cos()[:, None, None], params[:, 2].sin()[:, None, None]
        y, x = self.base[0], self.base[1]
        u, v = c * x + s * y, -s * x + c * y
        k = torch.exp(-0.5 * ((u / sx) ** 2 + (v / sy) ** 2))
        return k / k.sum((-1, -2), keepdim=True)

    def _sharpen(self, k: torch.Tensor, amount: torch.Tensor, radius: torch.Tensor) -> torch.Tensor:
        """Kernels k followed by an unsharp mask on the LR grid, as one HR kernel per row.

        An unsharp mask after subsampling, lr + a * (lr - g * lr) with g a Gaussian of `radius` LR
        pixels, equals subsampling after the HR kernel (1 + a) k - a (g↑s * k), where g↑s spreads g's
        taps s HR pixels apart. The amount a may go down to -1: a blend of the LR with its g-blurred
        self, a softer LR, so that early in training, while the Gaussian is still too narrow for a
        soft real LR, the optimiser can move a down and back up (a clamp at 0 stopped its gradient for
        good: every learner ended with no mask). The radius stays in [0.5, 1.5] LR px (cameras
        sharpen at about one pixel); g is cut at `USM_REACH` LR px and renormalised, and so is what
        falls outside the window.
        """
        t = torch.arange(-USM_REACH, USM_REACH + 1, device=k.device, dtype=k.dtype)
        g1 = torch.exp(-0.5 * (t[None] / radius[:, None]) ** 2)
        g1 = g1 / g1.sum(-1, keepdim=True)
        g = (g1[:, :, None] * g1[:, None, :])[:, None]  # (B, 1, taps, taps)
        wide = F.conv2d(k[None], g, padding=USM_REACH * self.scale, dilation=self.scale, groups=k.shape[0])[0]
        a = amount[:, None, None]
        out = (1 + a) * k - a * wide
        return out / out.sum((-1, -2), keepdim=True)


def _unsharp_params(head_out: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(amount in [-1, USM_MAX], radius in [0.5, 1.5] LR px) from columns 3 and 4 of KernelNet's head."""
    return head_out[:, 3].clamp(-1.0, USM_MAX), head_out[:, 4].clamp(math.log(0.5), math.log(1.5)).exp()


class NoiseNet(nn.Module):
    """Blurred LR + standard-normal maps -> bounded additive noise whose mean is zero at every pixel.

    n = max_level * tanh(scale(lr) * mix(noise)). `mix` is one bias-free 3x3 convolution of the random
    maps (spatially and colour-correlated noise); `scale` is a small CNN on the image (3x3
    convolutions, zero padding, LeakyReLU) giving one gain per pixel and colour (signal-dependent
    noise, as a sensor's shot noise). Because mix(noise) is symmetric about zero for any image and
    tanh is odd, E[n | lr] = 0: the noise cannot carry a colour cast, a tone curve or a sharpening.
    A free-form net on the image and the maps can, and with a discriminator on high-passed crops
    nothing holds such an offset back: it drifted 6-9 8-bit levels darker on the benchmark, which SR
    trained on the pairs then learnt to undo on every real LR image.

    Args:
        features: width of `scale`; layers: its 3x3 convolutions (receptive radius = layers pixels,
            at least the mix's 1); random_channels: random maps per pixel; max_level: bound of |n| in [0, 1] units.
    Shapes:
        lr: (B, 3, h, w) in [0, 1], noise: (B, random_channels, h, w) -> (B, 3, h, w) in [-max_level, max_level].
    """

    def __init__(self, *, features: int = 32, layers: int = 3, random_channels: int = 3, max_level: float = 0.1):
        super().__init__()
        self.random_channels, self.max_level = random_channels, max_level
        chans = [3] + [features] * (layers - 1) + [3]
        convs = []
        for i in range(layers):
            convs.append(nn.Conv2d(chans[i], chans[i + 1], 3, padding=1))
            if i < layers - 1:
                convs.append(nn.LeakyReLU(0.2))
        self.scale = nn.Sequential(*convs)
        # Start with a faint noise of one 8-bit level, the same everywhere: at zero gain the loss's
        # gradient in the gain is a zero-mean draw (the noise is symmetric), so it would only drift.
        nn.init.zeros_(self.scale[-1].weight)
        nn.init.constant_(self.scale[-1].bias, (1 / 255) / max_level if max_level > 0 else 0.0)
        self.mix = nn.Conv2d(random_channels, 3, 3, padding=1, bias=False)
        with torch.no_grad():  # start white and independent per colour: the maps' centre taps, once each
            self.mix.weight.zero_()
            for c in range(3):
                self.mix.weight[c, c % random_channels, 1, 1] = 1.0
        self.receptive_radius = layers

    def forward(self, lr: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        return self.max_level * torch.tanh(self.scale(lr) * self.mix(noise.to(lr.dtype)))


class PDMDegrader(nn.Module):
    """HR -> realistic LR before the JPEG stage: blur with a drawn kernel, subsample, add noise.

    Args:
        scale: 2, 3 or 4; kernel_size, z_dim, hidden, init_sigma, form: `KernelNet`;
        noise_features, noise_layers, random_channels, max_level: `NoiseNet`.
    Shapes:
        hr: (B, 3, H, W) in [0, 1], H and W multiples of `scale`; z: (B, z_dim); noise:
        (B, random_channels, H/scale, W/scale) -> LR (B, 3, H/scale, W/scale), roughly in [0, 1]
        (make-pairs rounds and clamps), and the noise added to it, of the same shape. z and noise are drawn from torch's global generator when
        omitted (training); make-pairs passes seeded ones so its output is reproducible.
    """

    def __init__(
        self,
        *,
        scale: int = 4,
        kernel_size: int = 20,
        z_dim: int = 8,
        hidden: int = 64,
        init_sigma: float = 1.6,
        form: str = "softmax",
        noise_features: int = 32,
        noise_layers: int = 3,
        random_channels: int = 3,
        max_level: float = 0.1,
    ):
        super().__init__()
        self.scale = scale
        self.kernel = KernelNet(
            size=kernel_size, z_dim=z_dim, hidden=hidden, init_sigma=init_sigma, form=form, scale=scale
        )
        self.noise = NoiseNet(
            features=noise_features, layers=noise_layers, random_channels=random_channels, max_level=max_level
        )

    def draw_z(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        return torch.randn(n, self.kernel.z_dim, generator=generator).to(self.kernel.head.weight.device)

    def blur(self, hr: torch.Tensor, z: torch.Tensor | None = None, *, valid: bool = False) -> torch.Tensor:
        """(hr * k)↓s with one kernel per image; `valid` skips the padding (HR crops with a margin)."""
        z = self.draw_z(hr.shape[0]) if z is None else z
        return blur_down(hr, self.kernel(z), self.scale, padding="valid" if valid else "reflect")

    def add_noise(self, lr: torch.Tensor, noise: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(noisy LR, the noise added); the noise net reads the LR detached (PDM)."""
        if noise is None:
            noise = torch.randn(lr.shape[0], self.noise.random_channels, *lr.shape[2:], device=lr.device)
        n = self.noise(lr.detach(), noise)
        return lr + n, n

    def forward(
        self,
        hr: torch.Tensor,
        z: torch.Tensor | None = None,
        noise: torch.Tensor | None = None,
        *,
        valid: bool = False,
        trim: int = 0,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(LR before rounding and JPEG, the noise in it). `valid` and `trim` are for training crops
        with a margin: no padding in the blur, and `trim` LR pixels cut from each side after the noise."""
        lr, n = self.add_noise(self.blur(hr, z, valid=valid), noise)
        if trim:
            lr, n = lr[..., trim:-trim, trim:-trim], n[..., trim:-trim, trim:-trim]
        return lr, n

    @torch.no_grad()
    def mean_kernel(self, draws: int = 256, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """(mean kernel (K, K), `draws` kernels (draws, K, K)) over seeded codes, on the CPU, float32."""
        z = self.draw_z(draws, torch.Generator().manual_seed(seed))
        ks = self.kernel(z).float().cpu()
        return ks.mean(0), ks


class PatchDiscriminator(nn.Module):
    """Patch discriminator on LR crops, one logit per patch.

    conv3x3 (3 -> f) + LReLU, then `layers` x [conv4x4 stride 2 (x2 width, at most 8f) + LReLU],
    then conv3x3 -> 1 channel. Spectral norm on every convolution when `spectral_norm` (no other
    normalisation: batch statistics would let D tell batches apart instead of images).

    Args:
        features: f; layers: stride-2 stages; spectral_norm: on/off.
    Shapes:
        x: (B, 3, h, w) in [0, 1] -> (B, 1, h / 2**layers, w / 2**layers) logits (rounded down).
    """

    def __init__(self, *, features: int = 64, layers: int = 3, spectral_norm: bool = True):
        super().__init__()
        sn = nn.utils.parametrizations.spectral_norm if spectral_norm else (lambda m: m)
        mods: list[nn.Module] = [sn(nn.Conv2d(3, features, 3, padding=1)), nn.LeakyReLU(0.2)]
        c = features
        for _ in range(layers):
            c2 = min(c * 2, features * 8)
            mods += [sn(nn.Conv2d(c, c2, 4, stride=2, padding=1)), nn.LeakyReLU(0.2)]
            c = c2
        mods.append(sn(nn.Conv2d(c, 1, 3, padding=1)))
        self.body = nn.Sequential(*mods)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


def round8(x: torch.Tensor) -> torch.Tensor:
    """8-bit rounding with a straight-through gradient (what a PNG of the LR stores)."""
    return x + ((x * 255).round() / 255 - x).detach()


def lr_margin(noise_layers: int) -> int:
    """LR pixels trimmed from each side of a training crop: the noise net's zero padding reaches that far."""
    return noise_layers


def hr_crop_for(lr_crop: int, scale: int, kernel_size: int, noise_layers: int) -> int:
    """HR crop that yields an `lr_crop` LR crop free of padding effects (valid blur, trimmed noise)."""
    return (lr_crop + 2 * lr_margin(noise_layers)) * scale + kernel_size - scale
