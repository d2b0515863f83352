"""Real-ESRGAN's blind "second-order" degradation: LR pairs with no model, the peer a learned one must beat.

The recipe of Real-ESRGAN's `options/train_realesrnet_x4plus.yml` (Wang et al., ICCVW 2021, sec. 3),
as its data pipeline (`RealESRGANDataset` for the kernels, `RealESRNetModel.feed_data` for the order)
and basicsr's `degradations.py` apply it, written for whole images:

1. first stage: blur (always; a sinc kernel with p 0.1), random resize (up/down/keep), Gaussian or
   Poisson noise (grey with p 0.4), clamp, JPEG;
2. second stage: blur with p 0.8, random resize relative to the target size, noise;
3. in random order (p 0.5 each): [resize to HR/scale + a final sinc filter with p 0.8] then JPEG, or
   JPEG then [resize + sinc]; the recipe found other orders give "twisted lines";
4. clamp and round to 8 bits.

Departures, each forced by using real files instead of a GPU batch: JPEG is real libjpeg (Pillow,
4:2:0) at an integer quality drawn uniformly from the range, where the recipe runs a differentiable
JPEG at a real-valued quality; reflection padding falls back to edge replication when an image is
smaller than the kernel's radius; kernels are applied at their own size (the recipe zero-pads them to
21x21, which changes nothing). Real-ESRNet also unsharp-masks the ground truth and trains on that
(`gt_usm: True`); that changes the SR targets, not the degradation, so it is off by default
(`BlindConfig.gt_usm`) and every arm of a comparison keeps the same HR.

Every random choice comes from one numpy Generator per LR image, seeded from the image name, the
seed and the draw index (`blind_rng`): pairs are reproducible and independent of order.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from srpipe.degrade import blind_kernels as bk
from srpipe.engine.folders import Skip, map_folder
from srpipe.errors import SrpipeError, UsageError
from srpipe.io.imageio import list_sources
from srpipe.io.pair_folder import PAIRS, pair_entry, pair_files

PI = math.pi
RESIZE_MODES = ("area", "bilinear", "bicubic")  # drawn uniformly before every resize (feed_data)
GREY = (0.2989, 0.587, 0.114)  # torchvision rgb_to_grayscale, what basicsr's grey Poisson noise uses


@dataclass(frozen=True)
class BlindConfig:
    """Every range of the recipe; names follow the yml's keys (suffix 2: the second stage)."""

    # Kernels (RealESRGANDataset): odd sizes 7..21, uniform ("kernel_range = [2 * v + 1 for v in range(3, 11)]").
    kernel_sizes: tuple[int, ...] = (7, 9, 11, 13, 15, 17, 19, 21)
    rotation_range: tuple[float, float] = (-PI, PI)  # anisotropic kernels' angle, radians
    # Sinc blur cutoffs, radians/pixel: wider range for large kernels, which can hold a lower cutoff.
    sinc_cutoff_small: tuple[float, float] = (PI / 3, PI)  # kernel size < 13
    sinc_cutoff_large: tuple[float, float] = (PI / 5, PI)  # kernel size >= 13
    # First stage (yml `datasets.train` and top level).
    kernel_prob: tuple[float, ...] = (0.45, 0.25, 0.12, 0.03, 0.12, 0.03)  # per blind_kernels.FAMILIES
    sinc_prob: float = 0.1  # a sinc kernel instead of the mixture
    blur_sigma: tuple[float, float] = (0.2, 3.0)  # sigma_x and sigma_y ranges, HR pixels
    betag_range: tuple[float, float] = (0.5, 4.0)  # generalized Gaussian shape
    betap_range: tuple[float, float] = (1.0, 2.0)  # plateau shape
    resize_prob: tuple[float, float, float] = (0.2, 0.7, 0.1)  # up, down, keep
    resize_range: tuple[float, float] = (0.15, 1.5)  # up: U(1, 1.5); down: U(0.15, 1); of the current size
    gaussian_noise_prob: float = 0.5  # Gaussian, else Poisson
    noise_range: tuple[float, float] = (1.0, 30.0)  # Gaussian sigma, 8-bit levels
    poisson_scale_range: tuple[float, float] = (0.05, 3.0)  # multiplier of the shot noise
    gray_noise_prob: float = 0.4  # one noise map for all channels
    jpeg_range: tuple[int, int] = (30, 95)  # quality, inclusive
    # Second stage.
    second_blur_prob: float = 0.8  # the second blur is skipped otherwise
    kernel_prob2: tuple[float, ...] = (0.45, 0.25, 0.12, 0.03, 0.12, 0.03)
    sinc_prob2: float = 0.1
    blur_sigma2: tuple[float, float] = (0.2, 1.5)
    betag_range2: tuple[float, float] = (0.5, 4.0)
    betap_range2: tuple[float, float] = (1.0, 2.0)
    resize_prob2: tuple[float, float, float] = (0.3, 0.4, 0.3)  # up, down, keep
    resize_range2: tuple[float, float] = (0.3, 1.2)  # of the target (LR) size, not the current one
    gaussian_noise_prob2: float = 0.5
    noise_range2: tuple[float, float] = (1.0, 25.0)
    poisson_scale_range2: tuple[float, float] = (0.05, 2.5)
    gray_noise_prob2: float = 0.4
    jpeg_range2: tuple[int, int] = (30, 95)
    # Final step.
    final_sinc_prob: float = 0.8  # else no filter (the recipe's 21x21 pulse)
    final_sinc_cutoff: tuple[float, float] = (PI / 3, PI)  # for every kernel size
    jpeg_last_prob: float = 0.5  # [resize + sinc] then JPEG; else JPEG then [resize + sinc]
    gt_usm: bool = False  # unsharp-mask the HR first and write it so (Real-ESRNet's gt_usm; see module doc)

    def __post_init__(self):
        for name in ("kernel_prob", "kernel_prob2"):
            p = getattr(self, name)
            if len(p) != len(bk.FAMILIES) or min(p) < 0 or not math.isclose(sum(p), 1.0, abs_tol=1e-6):
                raise UsageError(f"BlindConfig.{name} must be {len(bk.FAMILIES)} probabilities summing to 1")
        for name in ("resize_prob", "resize_prob2"):
            p = getattr(self, name)
            if min(p) < 0 or not math.isclose(sum(p), 1.0, abs_tol=1e-6):
                raise UsageError(f"BlindConfig.{name} (up, down, keep) must sum to 1, got {p}")
        if any(k % 2 == 0 or k < 1 for k in self.kernel_sizes):
            raise UsageError(f"BlindConfig.kernel_sizes must be odd, got {self.kernel_sizes}")
        for name in ("jpeg_range", "jpeg_range2"):
            lo, hi = getattr(self, name)
            if not 1 <= lo <= hi <= 100:
                raise UsageError(f"BlindConfig.{name} must satisfy 1 <= min <= max <= 100")


@dataclass(frozen=True)
class StageDraw:
    """The drawn parameters of one stage."""

    kernel: bk.KernelDraw | None  # None: no blur
    resize: str  # up | down | keep
    resize_scale: float  # first stage: of the current size; second: of the target size
    resize_mode: str  # one of RESIZE_MODES
    noise: str  # gaussian | poisson
    noise_level: float  # Gaussian sigma (8-bit levels) or Poisson scale
    gray_noise: bool
    jpeg: int  # quality


@dataclass(frozen=True)
class BlindDraw:
    """Every parameter of one LR image except the noise maps."""

    first: StageDraw
    second: StageDraw
    final_sinc: bk.KernelDraw | None  # None: no final filter
    final_mode: str  # resize mode of the final resize to HR/scale
    jpeg_last: bool  # True: [resize + sinc] then JPEG; False: JPEG then [resize + sinc]

    def to_json(self) -> dict:
        return asdict(self)


def blind_rng(name: str, seed: int = 0, draw: int = 0) -> np.random.Generator:
    """The generator of one LR image: from its name, the seed and the draw index, not from the order."""
    h = hashlib.sha256(f"srpipe-blind:{seed}:{draw}:{name}".encode()).digest()
    return np.random.default_rng(int.from_bytes(h[:16], "big"))


def _as_numpy_rng(rng) -> np.random.Generator:
    if isinstance(rng, np.random.Generator):
        return rng
    if isinstance(rng, torch.Generator):
        return np.random.default_rng(int(torch.randint(0, 2**62, (1,), generator=rng)))
    raise TypeError(f"rng must be a numpy Generator or a torch Generator, got {type(rng).__name__}")


def _pick(rng: np.random.Generator, options: tuple, probs=None):
    p = None if probs is None else np.asarray(probs, dtype=np.float64) / sum(probs)
    return options[int(rng.choice(len(options), p=p))]


def _draw_kernel(rng, cfg: BlindConfig, stage: int) -> bk.KernelDraw:
    """RealESRGANDataset's kernel1 / kernel2: a size, then sinc or one of the six families."""
    s = "" if stage == 1 else "2"
    size = int(_pick(rng, cfg.kernel_sizes))
    if rng.uniform() < getattr(cfg, f"sinc_prob{s}"):
        return bk.draw_sinc(rng, size, cfg.sinc_cutoff_small if size < 13 else cfg.sinc_cutoff_large)
    return bk.draw_mixed(
        rng,
        size,
        probs=getattr(cfg, f"kernel_prob{s}"),
        sigma=getattr(cfg, f"blur_sigma{s}"),
        betag=getattr(cfg, f"betag_range{s}"),
        betap=getattr(cfg, f"betap_range{s}"),
        rotation=cfg.rotation_range,
    )


def _draw_stage(rng, cfg: BlindConfig, stage: int, kernel: bk.KernelDraw | None) -> StageDraw:
    s = "" if stage == 1 else "2"
    resize = _pick(rng, ("up", "down", "keep"), getattr(cfg, f"resize_prob{s}"))
    lo, hi = getattr(cfg, f"resize_range{s}")
    scale = float(rng.uniform(1.0, hi)) if resize == "up" else float(rng.uniform(lo, 1.0)) if resize == "down" else 1.0
    mode = _pick(rng, RESIZE_MODES)
    gaussian = bool(rng.uniform() < getattr(cfg, f"gaussian_noise_prob{s}"))
    level = float(rng.uniform(*getattr(cfg, f"noise_range{s}" if gaussian else f"poisson_scale_range{s}")))
    gray = bool(rng.uniform() < getattr(cfg, f"gray_noise_prob{s}"))
    q_lo, q_hi = getattr(cfg, f"jpeg_range{s}")
    quality = int(rng.integers(q_lo, q_hi + 1))
    return StageDraw(kernel, resize, scale, mode, "gaussian" if gaussian else "poisson", level, gray, quality)


def sample_blind(rng, cfg: BlindConfig = BlindConfig()) -> BlindDraw:
    """Draw every parameter of one LR image (kernels first, as the dataset does, then the model's draws)."""
    rng = _as_numpy_rng(rng)
    k1, k2 = _draw_kernel(rng, cfg, 1), _draw_kernel(rng, cfg, 2)
    final = None
    if rng.uniform() < cfg.final_sinc_prob:
        final = bk.draw_sinc(rng, int(_pick(rng, cfg.kernel_sizes)), cfg.final_sinc_cutoff)
    first = _draw_stage(rng, cfg, 1, k1)
    second = _draw_stage(rng, cfg, 2, k2 if rng.uniform() < cfg.second_blur_prob else None)
    jpeg_last = bool(rng.uniform() < cfg.jpeg_last_prob)
    return BlindDraw(first, second, final, _pick(rng, RESIZE_MODES), jpeg_last)


# ----------------------------------------------------------------------------- applying a draw


def _pad(x: torch.Tensor, p: int) -> torch.Tensor:
    """Reflect padding as the recipe's filter2D, replicate where the image is too small to reflect."""
    if p == 0:
        return x
    mode = "reflect" if p < min(x.shape[-2:]) else "replicate"
    return F.pad(x, (p, p, p, p), mode=mode)


def filter2d(x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """x (C, H, W) filtered per channel by an odd (k, k) kernel, same size out."""
    k = kernel.shape[-1]
    w = kernel.to(x.dtype).expand(x.shape[0], 1, k, k)
    return F.conv2d(_pad(x[None], k // 2), w, groups=x.shape[0])[0]


def _resize(x: torch.Tensor, mode: str, *, size=None, scale=None) -> torch.Tensor:
    """F.interpolate as the recipe calls it (no antialiasing; 'area' is an adaptive average)."""
    h, w = x.shape[-2:]
    if scale is not None and min(int(h * scale), int(w * scale)) < 1:
        scale, size = None, (max(1, int(h * scale)), max(1, int(w * scale)))  # tiny images only
    kw = {} if mode == "area" else {"align_corners": False}
    return F.interpolate(x[None], size=size, scale_factor=scale, mode=mode, **kw)[0]


def _round8(x: torch.Tensor) -> torch.Tensor:
    return torch.clamp((x * 255).round(), 0, 255) / 255


def _levels(img: torch.Tensor) -> float:
    """basicsr's Poisson 'vals': the count of distinct 8-bit values, rounded up to a power of two."""
    return float(2 ** math.ceil(math.log2(max(1, int(torch.unique(img).numel())))))


def _noise(x: torch.Tensor, d: StageDraw, rng: np.random.Generator) -> torch.Tensor:
    """Gaussian (sigma in 8-bit levels) or Poisson shot noise, grey or per channel; clamped to [0, 1]."""
    c, h, w = x.shape
    if d.noise == "gaussian":
        n = rng.standard_normal((1 if d.gray_noise else c, h, w), dtype=np.float32)
        noise = torch.from_numpy(n).expand(c, h, w) * (d.noise_level / 255)
    else:  # basicsr generate_poisson_noise_pt: photon counts on the 8-bit-rounded image
        base = _round8(
            (torch.tensor(GREY, dtype=x.dtype)[:, None, None] * x).sum(0, keepdim=True) if d.gray_noise else x
        )
        vals = _levels(base)
        counts = rng.poisson(base.double().numpy() * vals)
        noise = (torch.from_numpy(counts).to(x.dtype) / vals - base).expand(c, h, w) * d.noise_level
    return torch.clamp(x + noise, 0, 1)


def _jpeg(x: torch.Tensor, quality: int) -> torch.Tensor:
    from srpipe.io.jpeg import jpeg_compress

    return jpeg_compress(torch.clamp(x, 0, 1), quality)


def _first_stage(x: torch.Tensor, d: StageDraw, rng) -> torch.Tensor:
    x = filter2d(x, bk.kernel_of(d.kernel))
    x = _resize(x, d.resize_mode, scale=d.resize_scale)
    return _jpeg(_noise(x, d, rng), d.jpeg)


def _second_stage(x: torch.Tensor, d: StageDraw, lr_size: tuple[int, int], rng) -> torch.Tensor:
    if d.kernel is not None:
        x = filter2d(x, bk.kernel_of(d.kernel))
    size = tuple(max(1, int(s * d.resize_scale)) for s in lr_size)  # int(ori / scale * s2), as the recipe
    return _noise(_resize(x, d.resize_mode, size=size), d, rng)


def _final(x: torch.Tensor, d: BlindDraw, lr_size: tuple[int, int]) -> torch.Tensor:
    x = _resize(x, d.final_mode, size=lr_size)
    return x if d.final_sinc is None else filter2d(x, bk.kernel_of(d.final_sinc))


def _blur_separable(x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """x (C, H, W) filtered by the outer product of the odd 1-D kernel g with itself (reflect padding)."""
    c, k = x.shape[0], g.numel()
    g = g.to(x.dtype)
    y = F.conv2d(_pad(x[None], k // 2), g.view(1, 1, 1, k).expand(c, 1, 1, k), groups=c)
    return F.conv2d(y, g.view(1, 1, k, 1).expand(c, 1, k, 1), groups=c)[0]


def usm_sharpen(x: torch.Tensor, *, radius: int = 51, weight: float = 0.5, threshold: float = 10) -> torch.Tensor:
    """basicsr's USMSharp on (3, H, W): add `weight` x (x - Gaussian blur) where the detail exceeds
    `threshold` 8-bit levels, blended by the blurred mask. sigma as OpenCV's getGaussianKernel(radius, 0)."""
    sigma = 0.3 * ((radius - 1) * 0.5 - 1) + 0.8
    g = torch.exp(-((torch.arange(radius, dtype=torch.float64) - (radius - 1) / 2) ** 2) / (2 * sigma**2))
    g = g / g.sum()
    residual = x - _blur_separable(x, g)
    mask = _blur_separable((residual.abs() * 255 > threshold).to(x.dtype), g)
    return mask * torch.clamp(x + weight * residual, 0, 1) + (1 - mask) * x


def apply_blind(hr: torch.Tensor, scale: int, d: BlindDraw, rng) -> torch.Tensor:
    """LR (3, H/scale, W/scale), 8-bit values in [0, 1], of an HR (3, H, W) in [0, 1] under draw `d`.

    `rng` (numpy Generator) supplies the noise maps. H and W must be multiples of `scale`.
    """
    if hr.dim() != 3 or hr.shape[0] != 3:
        raise SrpipeError(f"blind degradation needs an RGB image (3, H, W), got shape {tuple(hr.shape)}")
    if hr.shape[1] % scale or hr.shape[2] % scale:
        raise SrpipeError(f"HR {hr.shape[2]}x{hr.shape[1]} is not a multiple of x{scale}: mod-crop it first")
    rng = _as_numpy_rng(rng)
    lr_size = (hr.shape[1] // scale, hr.shape[2] // scale)
    x = _first_stage(hr.detach().float().cpu(), d.first, rng)
    x = _second_stage(x, d.second, lr_size, rng)
    if d.jpeg_last:
        x = _jpeg(_final(x, d, lr_size), d.second.jpeg)
    else:
        x = _final(_jpeg(x, d.second.jpeg), d, lr_size)
    return _round8(x)


def blind_degrade(hr: torch.Tensor, scale: int, rng, cfg: BlindConfig = BlindConfig()) -> torch.Tensor:
    """One blind LR of `hr` (3, H, W) in [0, 1], H and W multiples of `scale`: (3, H/scale, W/scale),
    8-bit values in [0, 1]. `rng`: a numpy or torch Generator (`blind_rng(name, seed, draw)` for files).
    With `cfg.gt_usm` the HR is unsharp-masked and 8-bit rounded first (the caller writes that HR)."""
    rng = _as_numpy_rng(rng)
    d = sample_blind(rng, cfg)
    return apply_blind(_round8(usm_sharpen(hr)) if cfg.gt_usm else hr, scale, d, rng)


# ----------------------------------------------------------------------------- the pairs writer


def _write(path: Path, data: bytes) -> None:
    from srpipe.errors import write_failed
    from srpipe.io.imageio import atomic_write_bytes

    try:
        atomic_write_bytes(path, data)
    except OSError as e:
        raise SrpipeError(write_failed(path, e)) from e


def _pairs_of_image(p: Path, hr: torch.Tensor, out: Path, *, scale: int, draws: int, seed: int, cfg) -> list[dict]:
    """Write the `draws` LR of one mod-cropped HR and one HR file per draw; their pairs.json entries."""
    from srpipe.io.imageio import encode_png, to_uint

    hr_png = encode_png(to_uint(hr, 8))  # the HR is the same for every draw: encode it once
    entries = []
    for i in range(draws):
        name = p.stem if draws == 1 else f"{p.stem}_d{i}"
        rng = blind_rng(p.stem, seed, i)
        d = sample_blind(rng, cfg)
        lr = apply_blind(hr, scale, d, rng)
        gt_path, lq_path = pair_files(out, name)
        _write(gt_path, hr_png)
        _write(lq_path, encode_png(to_uint(lr, 8)))
        entries.append(
            pair_entry(name)
            | {
                "source": p.name,
                "hr_size": [hr.shape[2], hr.shape[1]],
                "draw": i,
                "degradation": d.to_json(),
            }
        )
    return entries


def _pairs_of_file(p: Path, *, out: Path, scale: int, draws: int, seed: int, cfg) -> list[dict]:
    """Read one HR file, mod-crop it and write its `draws` pairs (`_pairs_of_image`)."""
    from srpipe.io.imageio import read_image
    from srpipe.io.resize import mod_crop

    img, _ = read_image(p)
    hr = mod_crop(img, scale)
    if min(hr.shape[-2:]) < scale:
        raise Skip(f"{p} is too small ({img.shape[2]}x{img.shape[1]}) for x{scale}")
    if cfg.gt_usm:
        hr = _round8(usm_sharpen(hr))  # the written HR is 8-bit; degrade exactly what is written
    return _pairs_of_image(p, hr, out, scale=scale, draws=draws, seed=seed, cfg=cfg)


def make_blind_pairs(*, hr_dir, out_dir, scale: int = 4, draws: int = 1, seed: int = 0, cfg=None) -> dict:
    """Write OUT/hr/NAME.png, OUT/lr/NAME.png and OUT/pairs.json (last); returns the pairs.json content.

    Every HR (mod-cropped to `scale`) gets `draws` blind LR images, each drawn from the image's name,
    `seed` and its draw index (`blind_rng`). With draws > 1 the pairs are NAME_d0, NAME_d1, ..., each with
    its own copy of the HR, since training matches hr/ and lr/ files by name. Unreadable or too small
    images are skipped with a warning; an error if none is usable. `cfg`: a `BlindConfig` (default: the
    published recipe).
    """
    from srpipe import __version__
    from srpipe.config import to_dict
    from srpipe.io.files import write_json
    from srpipe.log import info

    cfg = cfg or BlindConfig()
    if scale not in (2, 3, 4):
        raise UsageError(f"--scale must be 2, 3 or 4, got {scale}")
    if draws < 1:
        raise UsageError(f"--draws must be >= 1, got {draws}")
    paths = list_sources(hr_dir, "HR")
    out = Path(out_dir)
    (out / PAIRS).unlink(missing_ok=True)  # from here on the folder is not a finished output
    info(f"make-pairs blind x{scale}: {len(paths)} image(s), {draws} LR draw(s) each, seed {seed}")
    one = partial(_pairs_of_file, out=out, scale=scale, draws=draws, seed=seed, cfg=cfg)
    done = map_folder(paths, one, where=hr_dir, progress="make-pairs blind")
    manifest = {
        "pairs": [entry for entries in done.results for entry in entries],
        "scale": scale,
        "method": "blind",
        "mode": "SDSR",
        "cleanup_factor": 1,
        "seed": seed,
        "draws": draws,
        "config": to_dict(cfg),
        "srpipe": __version__,
    }
    write_json(out / PAIRS, manifest)
    return manifest
