"""Blur kernels of Real-ESRGAN's blind degradation (Wang et al., ICCVW 2021, "Real-ESRGAN", sec. 3.2).

Seven families, all odd-sized, centred on the middle tap, summing to one:

* `iso` / `aniso`: Gaussian exp(-q/2), q = x^T S^-1 x with S = R diag(sx^2, sy^2) R^T (iso: sx = sy, no
  rotation). x is (column offset, row offset) from the centre; R rotates by theta.
* `generalized_iso` / `generalized_aniso`: exp(-q^beta / 2), beta from `betag` (flatter top for beta > 1,
  heavier tails for beta < 1).
* `plateau_iso` / `plateau_aniso`: 1 / (1 + q^beta), beta from `betap` (a flat top with slow tails).
* `sinc`: the circularly symmetric ideal low-pass with cutoff omega_c (radians per pixel, pi = Nyquist):
  omega_c J1(omega_c r) / (2 pi r), centre omega_c^2 / (4 pi). Truncated, so it rings: the ringing and
  overshoot artefacts of real sharpening and resampling (paper sec. 3.3).

All kernels are point-symmetric, so correlation (what `F.conv2d` computes) equals convolution.
Every family is built in float64 and normalised by its sum.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

# Order of the probability tuples in `BlindConfig` (Real-ESRGAN `kernel_list`).
FAMILIES = ("iso", "aniso", "generalized_iso", "generalized_aniso", "plateau_iso", "plateau_aniso")
SINC = "sinc"


@dataclass(frozen=True)
class KernelDraw:
    """The parameters of one drawn kernel; `kernel_of` turns them into taps."""

    family: str  # one of FAMILIES or "sinc"
    size: int  # odd side length
    sigma_x: float = 0.0  # Gaussian-like families: spread along the (rotated) x axis, pixels
    sigma_y: float = 0.0  # ... along the (rotated) y axis (= sigma_x for the iso families)
    theta: float = 0.0  # rotation, radians (0 for the iso families)
    beta: float = 1.0  # shape of the generalized / plateau families
    cutoff: float = 0.0  # sinc: omega_c, radians per pixel


def _grid(size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(x, y) offsets from the centre tap, float64, x along columns."""
    ax = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    y, x = torch.meshgrid(ax, ax, indexing="ij")
    return x, y


def quadratic_form(size: int, sigma_x: float, sigma_y: float, theta: float) -> torch.Tensor:
    """q = x^T S^-1 x on the grid, S = R diag(sigma_x^2, sigma_y^2) R^T, R the rotation by theta."""
    x, y = _grid(size)
    c, s = math.cos(theta), math.sin(theta)
    u = c * x + s * y  # coordinates in the kernel's own axes: R^T x
    v = -s * x + c * y
    return (u / sigma_x) ** 2 + (v / sigma_y) ** 2


def _normalised(k: torch.Tensor) -> torch.Tensor:
    return k / k.sum()


def gaussian(size: int, sigma_x: float, sigma_y: float, theta: float = 0.0) -> torch.Tensor:
    """Anisotropic (or, with sigma_x = sigma_y, isotropic) Gaussian kernel."""
    return _normalised(torch.exp(-0.5 * quadratic_form(size, sigma_x, sigma_y, theta)))


def generalized_gaussian(size: int, sigma_x: float, sigma_y: float, theta: float, beta: float) -> torch.Tensor:
    """exp(-q^beta / 2): beta = 1 is the Gaussian."""
    return _normalised(torch.exp(-0.5 * quadratic_form(size, sigma_x, sigma_y, theta) ** beta))


def plateau(size: int, sigma_x: float, sigma_y: float, theta: float, beta: float) -> torch.Tensor:
    """1 / (1 + q^beta): flat near the centre, polynomial tails."""
    return _normalised(1.0 / (1.0 + quadratic_form(size, sigma_x, sigma_y, theta) ** beta))


def sinc(size: int, cutoff: float) -> torch.Tensor:
    """Truncated circular low-pass (2-D sinc) of cutoff `cutoff` radians per pixel."""
    x, y = _grid(size)
    r = torch.sqrt(x**2 + y**2)
    safe = torch.where(r > 0, r, torch.ones_like(r))  # the centre's limit is set below
    k = cutoff * torch.special.bessel_j1(cutoff * safe) / (2 * math.pi * safe)
    k = torch.where(r > 0, k, torch.full_like(k, cutoff**2 / (4 * math.pi)))
    return _normalised(k)


def kernel_of(d: KernelDraw) -> torch.Tensor:
    """The (size, size) float64 taps of a drawn kernel."""
    if d.family == SINC:
        return sinc(d.size, d.cutoff)
    if d.family in ("iso", "aniso"):
        return gaussian(d.size, d.sigma_x, d.sigma_y, d.theta)
    if d.family.startswith("generalized"):
        return generalized_gaussian(d.size, d.sigma_x, d.sigma_y, d.theta, d.beta)
    if d.family.startswith("plateau"):
        return plateau(d.size, d.sigma_x, d.sigma_y, d.theta, d.beta)
    raise ValueError(f"unknown kernel family {d.family!r}; expected one of {FAMILIES + (SINC,)}")


def _beta(rng: np.random.Generator, lo: float, hi: float) -> float:
    # basicsr `random_bivariate_generalized_Gaussian` / `random_bivariate_plateau`: half of the draws
    # below 1, half above, whatever the range's widths. With the plateau range (1, 2) the lower half
    # is exactly beta = 1.
    return float(rng.uniform(lo, 1.0) if rng.uniform() < 0.5 else rng.uniform(1.0, hi))


def draw_mixed(
    rng: np.random.Generator,
    size: int,
    *,
    probs: tuple[float, ...],
    sigma: tuple[float, float],
    betag: tuple[float, float],
    betap: tuple[float, float],
    rotation: tuple[float, float],
) -> KernelDraw:
    """One of FAMILIES with probabilities `probs` (basicsr `random_mixed_kernels`)."""
    family = FAMILIES[int(rng.choice(len(FAMILIES), p=np.asarray(probs) / sum(probs)))]
    sx = float(rng.uniform(*sigma))
    if family.endswith("_iso") or family == "iso":
        sy, theta = sx, 0.0
    else:  # x and y spreads drawn independently from the same range, any orientation
        sy, theta = float(rng.uniform(*sigma)), float(rng.uniform(*rotation))
    beta = 1.0
    if family.startswith("generalized"):
        beta = _beta(rng, *betag)
    elif family.startswith("plateau"):
        beta = _beta(rng, *betap)
    return KernelDraw(family, size, sx, sy, theta, beta)


def draw_sinc(rng: np.random.Generator, size: int, cutoff: tuple[float, float]) -> KernelDraw:
    return KernelDraw(SINC, size, cutoff=float(rng.uniform(*cutoff)))
