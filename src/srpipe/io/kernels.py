"""Blur kernels for downscaling: construction, the strided blur, and measurements.

Geometry. Bicubic and area downscaling by an integer factor s put LR pixel i at HR coordinate
s*i + (s-1)/2: between two HR pixels when s is even. An SR model trained on such pairs learns that
geometry, so a learned kernel must keep its centre of mass there or SR learns to shift the image.
`kernel_size(s)` is therefore 5*s, even at x2 and x4 and odd at x3, so that the kernel's geometric
centre (size-1)/2 lands on s*i + (s-1)/2 with symmetric padding of (size-s)/2 HR pixels.

Kernels are (size, size) tensors that sum to one; `blur_down` applies them as a true convolution
(flipped correlation), which makes no difference for the point-symmetric kernels used here.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def kernel_size(scale: int) -> int:
    """Side of a learned kernel at `scale`: 5 * scale (covers a Gaussian of sigma up to ~1.2 * scale)."""
    return 5 * scale


def _grid(size: int, *, dtype=torch.float64) -> tuple[torch.Tensor, torch.Tensor]:
    r = torch.arange(size, dtype=dtype) - (size - 1) / 2
    return torch.meshgrid(r, r, indexing="ij")  # (y, x) offsets from the geometric centre


def gaussian_kernel(size: int, sigma_x: float, sigma_y: float | None = None, theta: float = 0.0) -> torch.Tensor:
    """Anisotropic Gaussian sampled on a size x size grid around its centre; sums to one (float32).

    `sigma_x`, `sigma_y` (HR pixels) along the axes rotated by `theta` radians counter-clockwise.
    """
    sigma_y = sigma_x if sigma_y is None else sigma_y
    if min(sigma_x, sigma_y) <= 0:
        raise ValueError(f"Gaussian sigmas must be > 0, got {sigma_x}, {sigma_y}")
    y, x = _grid(size)
    c, s = math.cos(theta), math.sin(theta)
    u, v = c * x + s * y, -s * x + c * y
    k = torch.exp(-0.5 * ((u / sigma_x) ** 2 + (v / sigma_y) ** 2))
    return (k / k.sum()).float()


def box_kernel(size: int, scale: int) -> torch.Tensor:
    """The s x s pixel-integration box (area downscaling), centred in a size x size kernel."""
    if (size - scale) % 2:
        raise ValueError(f"a {scale}x{scale} box cannot be centred in a {size}x{size} kernel")
    k = torch.zeros(size, size)
    a = (size - scale) // 2
    k[a : a + scale, a : a + scale] = 1.0 / scale**2
    return k


def _cubic(x: torch.Tensor, a: float = -0.5) -> torch.Tensor:
    """Keys' cubic convolution kernel (MATLAB's and torch's bicubic, a = -0.5)."""
    x = x.abs()
    near = (a + 2) * x**3 - (a + 3) * x**2 + 1
    far = a * x**3 - 5 * a * x**2 + 8 * a * x - 4 * a
    return torch.where(x <= 1, near, torch.where(x < 2, far, torch.zeros_like(x)))


def bicubic_kernel(scale: int, size: int | None = None) -> torch.Tensor:
    """The 2-D kernel of antialiased bicubic downscaling by `scale` (`srpipe.io.resize.bicubic_down`).

    Separable: the cubic stretched by the factor, normalised (away from borders, where torch
    renormalises clipped taps). Its support is 4*scale HR pixels, so `size` >= 4*scale keeps it whole.
    """
    size = size or kernel_size(scale)
    r = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    w = _cubic(r / scale)
    w = w / w.sum()
    return torch.outer(w, w).float()


def convolve_kernels(a: torch.Tensor, b: torch.Tensor, size: int | None = None) -> torch.Tensor:
    """Full 2-D convolution of two kernels, centred and cropped (or zero-padded) to `size` x `size`.

    Both kernels must have sides of the same parity as `size`'s relation requires: the result's
    centre is the sum of the centres, so crop offsets are exact when (len(a) + len(b) - 1 - size) is even.
    """
    full = F.conv2d(a[None, None].double(), b.flip(-1, -2)[None, None].double(), padding=b.shape[-1] - 1)[0, 0]
    size = size or full.shape[-1]
    extra = full.shape[-1] - size
    if extra % 2:
        raise ValueError(f"cannot centre a {full.shape[-1]}-tap convolution in {size} taps")
    if extra >= 0:
        e = extra // 2
        full = full[e : e + size, e : e + size]
    else:
        full = F.pad(full, [(-extra) // 2] * 4)
    return full.float()


def blur_down(hr: torch.Tensor, kernel: torch.Tensor, scale: int, *, padding: str = "reflect") -> torch.Tensor:
    """(hr * k) subsampled by `scale`: the only path from HR to LR of the `pdm` learner.

    Args:
        hr: (B, C, H, W), H and W multiples of `scale`.
        kernel: (K, K) for all images or (B, K, K) one per image; K - scale even (see `kernel_size`).
        padding: "reflect": (K - scale)/2 HR pixels on each side, so LR pixel i sits at HR
            coordinate scale*i + (scale-1)/2, as bicubic downscaling puts it; "valid": none, for an
            HR crop with that margin already around it (no border effects in training crops).
    Returns:
        (B, C, H/scale, W/scale) with "reflect"; (B, C, (H - K)/scale + 1, ...) with "valid".
    """
    b, c, h, w = hr.shape
    k = kernel.shape[-1]
    if padding == "valid":
        h, w = h - k + scale, w - k + scale
    elif padding != "reflect":
        raise ValueError(f"padding must be reflect or valid, got {padding!r}")
    if h % scale or w % scale:
        raise ValueError(f"image size {w}x{h} is not a multiple of scale {scale}; mod-crop it first")
    if (k - scale) % 2 or k < scale:
        raise ValueError(f"a {k}x{k} kernel cannot be centred on the x{scale} LR grid; use kernel_size({scale})")
    pad = (k - scale) // 2 if padding == "reflect" else 0
    x = F.pad(hr, [pad] * 4, mode="reflect") if pad else hr
    weight = kernel.to(hr.dtype).flip(-1, -2)
    if weight.dim() == 2:
        weight = weight.expand(c, 1, k, k)
        return F.conv2d(x, weight, stride=scale, groups=c)
    if weight.shape[0] != b:
        raise ValueError(f"{weight.shape[0]} kernels for a batch of {b} images")
    weight = weight[:, None].repeat_interleave(c, 0)  # (B*C, 1, K, K): image i's kernel on its C channels
    y = F.conv2d(x.reshape(1, b * c, *x.shape[-2:]), weight, stride=scale, groups=b * c)
    return y.reshape(b, c, *y.shape[-2:])


def kernel_stats(k: torch.Tensor) -> dict:
    """Centre of mass, widths and orientation of one kernel, in HR pixels.

    `sigma_major`/`sigma_minor`: square roots of the eigenvalues of the kernel's second-moment
    matrix about its centre of mass (exact sigmas for a Gaussian that fits in the window);
    `width` their geometric mean; `anisotropy` their ratio; `angle_deg` of the major axis;
    `centre` the centre of mass's offset (dy, dx) from the geometric centre; `negative_mass`
    the sum of the negative taps' magnitudes (sharpening). Negative lobes pull the second moments
    down: the bicubic kernel's are zero (Keys' cubic reproduces quadratics), so compare such
    kernels with `kernel_error`, not by width.
    """
    k = k.detach().double()
    y, x = _grid(k.shape[-1])
    total = k.sum()
    cy, cx = (k * y).sum() / total, (k * x).sum() / total
    dy, dx = y - cy, x - cx
    cov = (
        torch.stack(
            [
                torch.stack([(k * dx * dx).sum(), (k * dx * dy).sum()]),
                torch.stack([(k * dx * dy).sum(), (k * dy * dy).sum()]),
            ]
        )
        / total
    )
    evals, evecs = torch.linalg.eigh(cov)
    minor, major = (float(v.clamp(min=0).sqrt()) for v in evals)
    angle = math.degrees(math.atan2(float(evecs[1, 1]), float(evecs[0, 1]))) % 180
    return {
        "centre": [round(float(cy), 4), round(float(cx), 4)],
        "sigma_major": round(major, 4),
        "sigma_minor": round(minor, 4),
        "width": round(math.sqrt(major * minor), 4),
        "anisotropy": round(major / max(minor, 1e-6), 4),
        "angle_deg": round(angle, 2),
        "negative_mass": round(float(-k.clamp(max=0).sum()), 6),
    }


def _recentre(k: torch.Tensor, size: int) -> torch.Tensor:
    """Resample `k` bilinearly onto a size x size grid whose geometric centre is k's centre of mass."""
    k = k.double()
    n = k.shape[-1]
    y, x = _grid(n)
    cy, cx = float((k * y).sum() / k.sum()), float((k * x).sum() / k.sum())
    gy, gx = _grid(size)
    # sample positions in k's pixel index space, normalised to [-1, 1] (align_corners=True)
    sy = (gy + cy + (n - 1) / 2) / (n - 1) * 2 - 1
    sx = (gx + cx + (n - 1) / 2) / (n - 1) * 2 - 1
    grid = torch.stack([sx, sy], -1)[None]
    return F.grid_sample(k[None, None], grid, mode="bilinear", padding_mode="zeros", align_corners=True)[0, 0]


def kernel_error(k_est: torch.Tensor, k_true: torch.Tensor) -> float:
    """L2 distance between two kernels after moving each one's centre of mass onto a common centre.

    A kernel that is right up to a shift scores as right: the shift is a separate error that
    `kernel_stats(...)["centre"]` reports. Both are zero-padded to one size first.
    """
    size = max(k_est.shape[-1], k_true.shape[-1]) + 4
    return float((_recentre(k_est, size) - _recentre(k_true, size)).norm())


def kernel_picture(kernels: list[torch.Tensor], zoom: int = 8, gap: int = 4) -> torch.Tensor:
    """Kernels side by side, magnified `zoom` times (nearest), each scaled to its own peak: (3, H, W) in [0, 1].

    Positive taps are white on black; negative taps (sharpening) show in red.
    """
    tiles = []
    for k in kernels:
        k = k.float()
        peak = k.abs().max().clamp(min=1e-12)
        pos, neg = (k / peak).clamp(min=0), (-k / peak).clamp(min=0)
        rgb = torch.stack([pos + neg, pos, pos]).clamp(0, 1)
        tiles.append(rgb.repeat_interleave(zoom, 1).repeat_interleave(zoom, 2))
        tiles.append(torch.ones(3, tiles[-1].shape[1], gap))
    return torch.cat(tiles[:-1], 2) if tiles else torch.zeros(3, 1, 1)
