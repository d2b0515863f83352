"""bench/quality.py's measurements and tables: SR scores, LR statistics, closures, ratios, kernel errors.

- SR: PSNR-Y / SSIM-Y (BasicSR convention, border of SCALE cropped) and LPIPS (when the AlexNet
  weights resolve) of each SR model on the test LR of one degradation against the test HR.
- LR statistics of a set, as `eval-degradation` computes them: noise sigma in flat regions (per
  channel, median over images, 8-bit levels), JPEG 8x8 grid strength (median over images), and the
  frequency response `band_level` (`RealismConfig`'s mid band 0.25-0.5 over low band 1/32-1/8
  cycles/px of the luma, dB, median over images). Distances to the real LR (T's degraded LR): mean absolute difference over
  R, G, B (noise), absolute (grid, band); each also as a ratio of the bicubic arm's distance.
- Gap closure of an arm = (arm - bicubic) / (true - bicubic) in PSNR-Y (None without a true arm or
  when true does not beat bicubic).
- Kernel error (`srpipe.io.kernels.kernel_error`): a learner's mean kernel against the degradation's
  true (or effective) kernel, after aligning centres; bicubic's kernel is the reference. Every arm
  also gets the error of its pairs' least-squares kernel (`effective_kernel`): the linear kernel that
  best maps its HR to its LR (the true arm's shows the floor that noise and JPEG leave).
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from srpipe.eval.metrics import psnr, ssim
from srpipe.eval.realism.measures import RealismConfig, band_level, blockiness, noise_sigma
from srpipe.io.imageio import read_image

SCALE = 4
STAT_KEYS = ("noise", "grid", "band")  # LR statistics with a distance to real


@dataclass
class Scores:
    psnr_y: float
    ssim_y: float
    lpips: float | None


def evaluate_sr(model_dir: Path, test_lq: list[Path], test_gt: list[Path], device: str, lpips) -> Scores:
    from srpipe.upscale import interop
    from srpipe.upscale.infer import upscale_tensor

    net, _, _ = interop.load_generator(model_dir / "psnr.safetensors")
    net = net.eval().to(device)
    p, s, lp = [], [], []
    for lq_path, gt_path in zip(test_lq, test_gt, strict=True):
        lq, _ = read_image(lq_path)
        gt, _ = read_image(gt_path)
        with torch.no_grad():
            sr = upscale_tensor(net, lq, tile=0, device=device).clamp(0, 1)
        sr = (sr * 255).round() / 255  # what a user gets: an 8-bit file
        gt = gt[:, : sr.shape[1], : sr.shape[2]]
        p.append(float(psnr(sr, gt, crop_border=SCALE)))
        s.append(float(ssim(sr, gt, crop_border=SCALE)))
        if lpips is not None:
            lp.append(float(lpips(sr.to(device), gt.to(device))))
    return Scores(float(np.mean(p)), float(np.mean(s)), float(np.mean(lp)) if lp else None)


def lr_stats(paths: list[Path]) -> dict:
    """An LR set's noise (per channel and mean), grid and band level (module docstring)."""
    cfg = RealismConfig()
    noise, grid, band = [], [], []
    for p in paths:
        img, _ = read_image(p)
        noise.append(noise_sigma(img, cfg).numpy() * 255)
        grid.append(float(blockiness(img)))
        band.append(band_level(img, cfg))
    rgb = np.median(np.stack(noise), axis=0)
    return {
        "noise_rgb": [round(float(v), 3) for v in rgb],
        "noise": float(rgb.mean()),
        "grid": float(np.nanmedian(grid)),
        "band": float(np.nanmedian(band)),
    }


def effective_kernel(pairs: Path, size: int = 20, ridge: float = 1e-3) -> torch.Tensor:
    """The linear kernel that best maps a pair set's HR to its LR (luma, least squares): (size, size).

    Solves min_k sum (LR - (HR * k)↓SCALE)^2 over every LR pixel of every pair, with the geometry of
    `srpipe.io.kernels.blur_down` (reflect padding; pixels whose window leaves the image are left
    out), and a ridge of `ridge` times the mean diagonal (content has little power at the highest
    frequencies, which leaves those kernel components barely determined). Noise and JPEG average out; for a non-linear learner (DSGAN) it is the best linear
    description of its LR, so every arm gets a kernel to compare with the true one.
    """
    import torch.nn.functional as F

    w = torch.tensor([0.299, 0.587, 0.114], dtype=torch.float64).view(3, 1, 1)
    ata = torch.zeros(size * size, size * size, dtype=torch.float64)
    atb = torch.zeros(size * size, dtype=torch.float64)
    for lr_path in sorted((pairs / "lr").iterdir()):
        hr_path = next((pairs / "hr").glob(f"{lr_path.stem}.*"))
        hr, lr = (read_image(q)[0].double() for q in (hr_path, lr_path))
        y_hr, y_lr = (hr * w).sum(0), (lr * w).sum(0)
        h, wd = y_lr.shape
        cols = F.unfold(y_hr[None, None, : h * SCALE, : wd * SCALE], size, stride=SCALE)  # (size^2, n): valid windows
        nh = (h * SCALE - size) // SCALE + 1
        nw = (wd * SCALE - size) // SCALE + 1
        off = (size - SCALE) // 2 // SCALE  # LR index of the first valid window
        b = y_lr[off : off + nh, off : off + nw].reshape(-1)
        a = cols[0].flip(0)  # convolution: tap (u, v) multiplies HR (.. - u, .. - v)
        ata += a @ a.T
        atb += a @ b
    reg = ridge * ata.diagonal().mean() * torch.eye(size * size, dtype=torch.float64)
    k = torch.linalg.solve(ata + reg, atb)
    return k.reshape(size, size)


def lr_distances(st: dict, real: dict) -> dict:
    """Distances to the real LR: mean absolute difference over R, G, B (noise), absolute (grid, band)."""
    return {
        "noise_distance": float(np.abs(np.array(st["noise_rgb"]) - np.array(real["noise_rgb"])).mean()),
        "grid_distance": abs(st["grid"] - real["grid"]),
        "band_distance": abs(st["band"] - real["band"]),
    }


def closure(arm: float, bicubic: float, true: float) -> float | None:
    """(arm - bicubic) / (true - bicubic); None when true does not beat bicubic (no gap to close)."""
    gap = true - bicubic
    if not (math.isfinite(gap) and gap > 0 and math.isfinite(arm)):
        return None
    return (arm - bicubic) / gap


def ratio(distance: float, bicubic_distance: float) -> float | None:
    """An arm's distance as a share of bicubic's (None when bicubic's is zero or unknown)."""
    if not (math.isfinite(distance) and math.isfinite(bicubic_distance)) or bicubic_distance <= 0:
        return None
    return distance / bicubic_distance


def add_comparisons(arms: dict[str, dict]) -> dict[str, float | None]:
    """Fill each arm's distance ratios to bicubic in place; return {arm: gap closure} of the non-reference arms."""
    bic = arms.get("bicubic")
    for a in arms.values():
        for k in STAT_KEYS:
            a[f"{k}_ratio"] = ratio(a[f"{k}_distance"], bic[f"{k}_distance"]) if bic else None
    if bic is None or "true" not in arms:
        return {}
    return {
        name: closure(a["psnr_y"], bic["psnr_y"], arms["true"]["psnr_y"])
        for name, a in arms.items()
        if name not in ("bicubic", "true")
    }


def lpips_or_none(device: str):
    from srpipe.engine.weights import MissingWeightsError
    from srpipe.eval.metrics import LPIPS

    try:
        return LPIPS().to(device)
    except MissingWeightsError as e:
        print(f"note: LPIPS not reported ({str(e).splitlines()[0]})", file=sys.stderr)
        return None


def _f(v, fmt: str, none: str = "") -> str:
    return none if v is None or (isinstance(v, float) and not math.isfinite(v)) else format(v, fmt)


def _dist(a: dict, k: str, fmt: str) -> str:
    r = a.get(f"{k}_ratio")
    return f"{_f(a[f'{k}_distance'], fmt)}" + (f" ({r:.2f})" if r is not None else "")


def _kernels(a: dict) -> str:
    """'mean; LS': the learned mean kernel's error (pdm; bicubic's own kernel) and the pairs' least-squares kernel's."""
    mean, ls = _f(a.get("kernel_error"), ".3f"), _f(a.get("kernel_error_ls"), ".3f")
    return f"{mean}; {ls}" if mean else ls


def table(results: list[dict]) -> str:
    """The Markdown table: one row per (degradation, arm); distances with their ratio to bicubic's."""
    lines = [
        "| degradation | pairs | PSNR-Y (dB) | SSIM-Y | LPIPS | gap closure | kernel err. (mean; LS) | LR noise (real) "
        "| noise dist. (/bic) | LR grid (real) | grid dist. (/bic) | LR mid/low dB (real) | mid/low dist. (/bic) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        real = r["real_lr"]
        for arm, a in r["arms"].items():
            lines.append(
                f"| {r['degradation']} | {arm} | {_f(a['psnr_y'], '.2f')} | {_f(a['ssim_y'], '.4f')} "
                f"| {_f(a['lpips'], '.4f', 'n/a')} | {_f(r['closure'].get(arm), '.2f')} "
                f"| {_kernels(a)} "
                f"| {a['noise']:.2f} ({real['noise']:.2f}) | {_dist(a, 'noise', '.2f')} "
                f"| {a['grid']:.3f} ({real['grid']:.3f}) | {_dist(a, 'grid', '.3f')} "
                f"| {a['band']:.2f} ({real['band']:.2f}) | {_dist(a, 'band', '.2f')} |"
            )
    return "\n".join(lines)


def timing_table(results: list[dict]) -> str:
    """Seconds per arm: learner, pairs and SR training (wall, and CPU of that one process)."""
    lines = ["| degradation | pairs | learner s (CPU) | pairs s | SR s (CPU) |", "|---|---|---|---|---|"]
    for r in results:
        for arm, a in r["arms"].items():
            t = a.get("timing", {})

            def w(k):
                v = t.get(k) or {}
                return f"{_f(v.get('wall_s'), '.0f')} ({_f(v.get('cpu_s'), '.0f')})" if v else ""

            lines.append(f"| {r['degradation']} | {arm} | {w('learner')} | {w('pairs')} | {w('sr')} |")
    return "\n".join(lines)
