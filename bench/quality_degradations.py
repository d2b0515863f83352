"""The true degradations of bench/quality.py, the linear kernels they are known (or said) to have,
and the photo sets made with them.

Each `degrade_KIND(hr, rng) -> (file bytes, extension)` maps one HR photo ((3, H, W) float in [0, 1],
mod-cropped to SCALE) to its LR file at 1/SCALE the size, with every random choice drawn from `rng`.

- ``noise``: FSSR's DF2K "sensor noise" corruption (AIM 2019 RWSR track 1): bicubic x4 downscale,
  then white Gaussian noise of sigma 8 levels per pixel and channel *on the LR*, then 8-bit rounding.
  Stored as PNG.
- ``jpeg``: FSSR's DF2K "compression" corruption: bicubic x4 downscale, 8-bit rounding, then JPEG
  quality 30 (libjpeg through Pillow, 4:2:0 chroma) *on the LR*. Stored as the JPEG file itself.
- ``camera``: a camera of our own design. Optics: Gaussian lens PSF (sigma 1.2-1.8 HR px) in linear
  light. Sensor: x4 pixel integration (box), RGGB Bayer mosaic, Poisson-Gaussian noise (variance
  a*x + b with a = 4e-3, b = 1e-5 in linear [0, 1]). Processing: bilinear demosaic, sRGB gamma,
  unsharp mask (amount 0.6). Compression: JPEG quality 70-90 per photo. Stored as the JPEG file.
- ``blur``: one known linear kernel, then signal-dependent noise and JPEG, so that a learner's kernel
  can be checked against the truth. LR = JPEG(round8((HR * k)↓4 + n)): k is the anisotropic Gaussian
  `BLUR_KERNEL` (sigma 2.6 x 1.3 HR px, major axis at 30 degrees as `gaussian_kernel` turns it, on the
  20 x 20 grid of `kernel_size(4)`), applied to the sRGB values by `srpipe.io.kernels.blur_down` (the
  forward of the pdm learner; reflect padding, stride 4); n is Poisson-Gaussian noise on the LR,
  independent per pixel and channel, variance a*x + b with a = 4e-4, b = 4e-5 in [0, 1] units (about
  4 levels at mid-grey, 2 in the shadows); JPEG quality 75-90 per photo (4:2:0). The blur is strong
  (bicubic's x4 kernel has a width of about 1.5 HR px) and oriented, so the kernel is identifiable.

`TRUE_KERNELS[kind]()` is the kernel the LR's frequency response follows: `blur`'s exactly; `camera`'s
as an approximation ("reported, not targeted": its blur is in linear light and is followed by
demosaicking and sharpening, so no single linear kernel describes it): the lens Gaussian, averaged
over its sigma range, convolved with the 4 x 4 pixel-integration box; `noise` and `jpeg` are bicubic.
"""

from __future__ import annotations

import hashlib
import io
import math
import random
from pathlib import Path

import numpy as np
import torch

from srpipe.io.imageio import encode_png, list_images, read_image, to_uint, write_png
from srpipe.io.resize import bicubic_down, mod_crop

SCALE = 4
BLUR_SIGMAS = (2.6, 1.3)  # HR px along the kernel's major and minor axes
BLUR_THETA_DEG = 30.0  # major axis angle (gaussian_kernel's convention)
BLUR_NOISE = (4e-4, 4e-5)  # Poisson-Gaussian variance a*x + b on the LR, [0, 1] units
BLUR_JPEG = (75, 90)  # JPEG quality range, inclusive
CAMERA_LENS_SIGMA = (1.2, 1.8)  # HR px, uniform per photo


def _jpeg_bytes(rgb: np.ndarray, quality: int) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="JPEG", quality=quality, subsampling=2)  # 4:2:0, libjpeg's default
    return buf.getvalue()


def _srgb_to_linear(x: np.ndarray) -> np.ndarray:
    return np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4)


def _linear_to_srgb(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0, 1)
    return np.where(x <= 0.0031308, 12.92 * x, 1.055 * x ** (1 / 2.4) - 0.055)


def _uint8(x: np.ndarray) -> np.ndarray:
    return (np.clip(x, 0, 1) * 255).round().astype(np.uint8)


def degrade_noise(hr: torch.Tensor, rng: np.random.Generator) -> tuple[bytes, str]:
    lq = bicubic_down(hr[None], SCALE)[0].numpy()
    lq = lq + rng.normal(0, 8 / 255, lq.shape)
    return encode_png(to_uint(torch.from_numpy(lq).float())), "png"


def degrade_jpeg(hr: torch.Tensor, rng: np.random.Generator) -> tuple[bytes, str]:
    return _jpeg_bytes(to_uint(bicubic_down(hr[None], SCALE)[0]), 30), "jpg"


def degrade_camera(hr: torch.Tensor, rng: np.random.Generator) -> tuple[bytes, str]:
    import cv2

    lin = _srgb_to_linear(hr.permute(1, 2, 0).double().numpy())
    sigma = rng.uniform(*CAMERA_LENS_SIGMA)
    lin = cv2.GaussianBlur(lin, (0, 0), sigma, borderType=cv2.BORDER_REFLECT)
    h, w = lin.shape[0] // SCALE, lin.shape[1] // SCALE
    lin = lin[: h * SCALE, : w * SCALE].reshape(h, SCALE, w, SCALE, 3).mean(axis=(1, 3))  # pixel integration
    mosaic = np.empty((h, w))
    mosaic[0::2, 0::2] = lin[0::2, 0::2, 0]  # RGGB
    mosaic[0::2, 1::2] = lin[0::2, 1::2, 1]
    mosaic[1::2, 0::2] = lin[1::2, 0::2, 1]
    mosaic[1::2, 1::2] = lin[1::2, 1::2, 2]
    mosaic = mosaic + rng.normal(0, 1, mosaic.shape) * np.sqrt(4e-3 * np.clip(mosaic, 0, 1) + 1e-5)
    raw = np.clip(mosaic * 65535, 0, 65535).astype(np.uint16)
    # OpenCV names a Bayer pattern by the 2x2 block starting at row 1, column 1, one pixel in: the RGGB
    # mosaic above is its "BG" pattern ("RG" would swap red and blue in every camera LR).
    rgb = cv2.cvtColor(raw, cv2.COLOR_BayerBG2RGB).astype(np.float64) / 65535
    srgb = _linear_to_srgb(rgb)
    blur = cv2.GaussianBlur(srgb, (0, 0), 1.0)
    srgb = srgb + 0.6 * (srgb - blur)
    return _jpeg_bytes(_uint8(srgb), int(rng.integers(70, 91))), "jpg"


def blur_kernel() -> torch.Tensor:
    """The `blur` degradation's kernel: (20, 20) float64, sums to one, centred on the LR pixel."""
    from srpipe.io.kernels import gaussian_kernel, kernel_size

    k = gaussian_kernel(kernel_size(SCALE), *BLUR_SIGMAS, theta=math.radians(BLUR_THETA_DEG)).double()
    return k / k.sum()


def blur_lr(hr: torch.Tensor) -> torch.Tensor:
    """The linear part of `blur`: (3, H, W) HR -> (3, H/4, W/4) float64, before noise and JPEG."""
    from srpipe.io.kernels import blur_down

    return blur_down(hr[None].double(), blur_kernel(), SCALE)[0]


def degrade_blur(hr: torch.Tensor, rng: np.random.Generator) -> tuple[bytes, str]:
    lq = blur_lr(hr).permute(1, 2, 0).numpy()
    a, b = BLUR_NOISE
    lq = lq + rng.normal(0, 1, lq.shape) * np.sqrt(a * np.clip(lq, 0, 1) + b)
    return _jpeg_bytes(_uint8(lq), int(rng.integers(BLUR_JPEG[0], BLUR_JPEG[1] + 1))), "jpg"


def camera_kernel(steps: int = 7) -> torch.Tensor:
    """`camera`'s effective linear kernel (see the module docstring): (20, 20) float64."""
    from srpipe.io.kernels import box_kernel, convolve_kernels, gaussian_kernel, kernel_size

    size = kernel_size(SCALE)
    box = box_kernel(size, SCALE).double()
    # The lens Gaussian is centred on an HR pixel (odd grid) and the box between pixels (even grid):
    # their convolution is centred between pixels, on the LR pixel centre of the even grid.
    ks = [
        convolve_kernels(gaussian_kernel(size + 1, float(s)), box, size) for s in np.linspace(*CAMERA_LENS_SIGMA, steps)
    ]
    k = torch.stack(ks).double().mean(0)
    return k / k.sum()


def bicubic_true_kernel() -> torch.Tensor:
    from srpipe.io.kernels import bicubic_kernel, kernel_size

    return bicubic_kernel(SCALE, kernel_size(SCALE)).double()


DEGRADATIONS = {"noise": degrade_noise, "jpeg": degrade_jpeg, "camera": degrade_camera, "blur": degrade_blur}
TRUE_KERNELS = {"noise": bicubic_true_kernel, "jpeg": bicubic_true_kernel, "camera": camera_kernel, "blur": blur_kernel}
TARGETED_KERNELS = ("blur",)  # kernel error is a target here; elsewhere reported only


# ------------------------------------------------------------------------------------------ sets


def _seed_of(name: str, salt: str) -> int:
    return int.from_bytes(hashlib.sha256(f"{salt}/{name}".encode()).digest()[:8], "little")


def write_degraded(kind: str, hr_paths: list[Path], out: Path) -> None:
    """OUT/NAME.{png,jpg}: the true degradation of each HR photo (seeded by its name)."""
    out.mkdir(parents=True, exist_ok=True)
    for p in hr_paths:
        hr, _ = read_image(p)
        hr = mod_crop(hr, SCALE)
        data, ext = DEGRADATIONS[kind](hr, np.random.default_rng(_seed_of(p.stem, kind)))
        (out / f"{p.stem}.{ext}").write_bytes(data)


def write_pairs(hr_paths: list[Path], lq_dir: Path | None, out: Path) -> Path:
    """A pairs folder (hr/, lr/ as sr-train reads it): LR from `lq_dir` by stem, or bicubic when None."""
    lq_by_stem = {q.stem: q for q in lq_dir.iterdir()} if lq_dir is not None else {}
    for p in hr_paths:
        hr, _ = read_image(p)
        hr = mod_crop(hr, SCALE)
        write_png(out / "hr" / f"{p.stem}.png", hr)
        if lq_dir is None:
            write_png(out / "lr" / f"{p.stem}.png", bicubic_down(hr[None], SCALE)[0])
        else:
            write_png(out / "lr" / f"{p.stem}.png", read_image(lq_by_stem[p.stem])[0])
    return out


def split_photos(data: Path, mode, seed: int = 0) -> tuple[list[Path], list[Path], list[Path]]:
    photos = list_images(data / "hr" / "train")
    if len(photos) < mode.n_a + mode.n_c + mode.n_t:
        raise SystemExit(f"{data}/hr/train has {len(photos)} photos; mode needs {mode.n_a + mode.n_c + mode.n_t}")
    random.Random(seed).shuffle(photos)
    a = photos[: mode.n_a]
    c = photos[mode.n_a : mode.n_a + mode.n_c]
    t = photos[mode.n_a + mode.n_c : mode.n_a + mode.n_c + mode.n_t]
    return a, c, t


def _link_folder(paths: list[Path], out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    for p in paths:
        q = out / p.name
        if not q.exists():
            q.symlink_to(p.resolve())
    return out


def build_true_sets(kind: str, a: list[Path], c: list[Path], t: list[Path], d: Path) -> None:
    """D/real_lr (C degraded), D/test_lr and D/test_hr (T), D/train_lr (A degraded)."""
    write_degraded(kind, c, d / "real_lr")
    write_degraded(kind, t, d / "test_lr")
    write_degraded(kind, a, d / "train_lr")
    for p in t:
        write_png(d / "test_hr" / f"{p.stem}.png", mod_crop(read_image(p)[0], SCALE))


def build_realsr_sets(data: Path, n_test: int, d: Path) -> None:
    """D/real_lr (the learner's), D/test_lr, D/test_hr from RealSR_NTIRE19 (see the module docstring)."""
    learn, test = realsr_split(data, n_test)
    root = data / "real_pairs" / "RealSR_NTIRE19"
    for sub, chosen in (("real_lr", learn), ("test_lr", test)):
        for n in chosen:
            lq, _ = read_image(root / "lr" / f"{n}.png")
            write_png(d / sub / f"{n}.png", bicubic_down(mod_crop(lq, SCALE)[None], SCALE)[0])
    for n in test:
        gt, _ = read_image(root / "hr" / f"{n}.png")
        write_png(d / "test_hr" / f"{n}.png", mod_crop(gt, SCALE))


def realsr_split(data: Path, n_test: int) -> tuple[list[str], list[str]]:
    names = sorted(p.stem for p in list_images(data / "real_pairs" / "RealSR_NTIRE19" / "lr"))
    random.Random(1).shuffle(names)
    return names[: len(names) - n_test], names[len(names) - n_test :]
