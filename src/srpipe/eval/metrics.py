"""Full-reference image metrics: PSNR, SSIM, colour PSNR, LPIPS; and `evaluate_folders` for `srpipe eval`.

All metric functions take batched float tensors (B, 3, H, W) (or one image (3, H, W)) with values in
[0, 1] and return one value per image, as float64 tensors of shape (B,) (0-d for a single image).

Conventions (the ones SR papers report, so numbers are comparable):

* PSNR / SSIM on Y, as BasicSR's `calculate_psnr/ssim(test_y_channel=True)` (itself a port of the
  MATLAB scripts the field uses): ITU-R BT.601 *studio-range* luma,
  ``Y = 16 + 65.481 R + 128.553 G + 24.966 B`` with R, G, B in [0, 1], so Y lies in [16, 235] on a
  0-255 scale. Unlike MATLAB's `rgb2ycbcr` on uint8 input, Y is not rounded to integers (BasicSR does
  not round either); the difference is below 0.01 dB on typical images.
* `crop_border` pixels are removed on every side before anything is computed (BasicSR crops `scale`).
* PSNR = 10 log10(255^2 / MSE) on the 0-255 scale, per image, infinite for identical images.
* SSIM (Wang et al. 2004): 11x11 Gaussian window, sigma 1.5, K1 = 0.01, K2 = 0.03, L = 255, means
  over the "valid" region only (no padding), population (not sample) variances. This equals
  scikit-image's ``structural_similarity(gaussian_weights=True, sigma=1.5,
  use_sample_covariance=False, data_range=255)``. On RGB, the mean of the per-channel SSIMs.
* Colour PSNR: PSNR between the per-channel image means (FSSR, Fritsche et al. 2019, reported it as
  PSNR_col): it only sees global colour shifts, the failure GAN-based SR is known for.
* LPIPS: AlexNet, linear heads v0.1 (Zhang et al. 2018), inputs mapped from [0, 1] to [-1, 1].

Everything is computed in float64: SSIM's variance terms E[x^2] - E[x]^2 lose about four digits to
cancellation in float32 on a 0-255 scale.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from srpipe.errors import SrpipeError

# BT.601 studio-range luma weights for R, G, B in [0, 1] -> Y in [16, 235] (BasicSR `rgb2ycbcr`).
_Y_WEIGHTS = (65.481, 128.553, 24.966)
_Y_OFFSET = 16.0

SSIM_WINDOW = 11  # Gaussian window size (Wang et al. 2004; MATLAB ssim_index; BasicSR)
SSIM_SIGMA = 1.5  # Gaussian window sigma (same sources)
_K1, _K2 = 0.01, 0.03  # SSIM stabilising constants (Wang et al. 2004)
LPIPS_MIN_SIZE = 32  # AlexNet's stride-4 stem and three max-pools leave nothing of smaller inputs


# ---------------------------------------------------------------- helpers


def _batch(x: torch.Tensor, name: str) -> tuple[torch.Tensor, bool]:
    if x.dim() == 3:
        return x.unsqueeze(0), True
    if x.dim() != 4 or x.shape[1] != 3:
        raise ValueError(f"{name} must be (B, 3, H, W) or (3, H, W), got {tuple(x.shape)}")
    return x, False


def _pair(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, bool]:
    a, single = _batch(a, "a")
    b, _ = _batch(b, "b")
    if a.shape != b.shape:
        raise ValueError(f"images differ in shape: {tuple(a.shape)} vs {tuple(b.shape)}")
    return a, b, single


def _crop(x: torch.Tensor, crop_border: int) -> torch.Tensor:
    if crop_border < 0:
        raise ValueError(f"crop_border must be >= 0, got {crop_border}")
    if crop_border == 0:
        return x
    h, w = x.shape[-2:]
    if h <= 2 * crop_border or w <= 2 * crop_border:
        raise ValueError(f"crop_border {crop_border} leaves nothing of a {w}x{h} image")
    return x[..., crop_border:-crop_border, crop_border:-crop_border]


def _out(v: torch.Tensor, single: bool) -> torch.Tensor:
    return v[0] if single else v


def rgb_to_y(x: torch.Tensor) -> torch.Tensor:
    """BT.601 studio-range luma: (B, 3, H, W) RGB in [0, 1] -> (B, 1, H, W) Y in [16/255, 235/255].

    Same formula as BasicSR's `rgb2ycbcr(y_only=True)` and MATLAB's `rgb2ycbcr`, divided by 255.
    A (3, H, W) input gives (1, H, W).
    """
    w = torch.tensor(_Y_WEIGHTS, dtype=x.dtype, device=x.device).view(3, 1, 1)
    return ((x * w).sum(dim=-3, keepdim=True) + _Y_OFFSET) / 255.0


def _prepare(a, b, crop_border: int, y_only: bool):
    """Both images as float64 on the 0-255 scale, cropped, Y or RGB."""
    a, b, single = _pair(a, b)
    a, b = a.double(), b.double()
    if y_only:
        a, b = rgb_to_y(a), rgb_to_y(b)
    return _crop(a, crop_border) * 255.0, _crop(b, crop_border) * 255.0, single


# ---------------------------------------------------------------- metrics


def psnr(a: torch.Tensor, b: torch.Tensor, *, crop_border: int = 0, y_only: bool = True) -> torch.Tensor:
    """PSNR in dB of each image pair, on Y (default) or on RGB; (B,) float64, inf for identical images.

    a, b: (B, 3, H, W) or (3, H, W) in [0, 1]. crop_border: pixels removed on each side first.
    """
    a, b, single = _prepare(a, b, crop_border, y_only)
    mse = (a - b).pow(2).flatten(1).mean(dim=1)
    return _out(10.0 * torch.log10(255.0**2 / mse), single)


def _gaussian_window(device) -> torch.Tensor:
    import cv2

    # cv2's sampled, normalised Gaussian: the window BasicSR and the MATLAB script use.
    g = torch.from_numpy(cv2.getGaussianKernel(SSIM_WINDOW, SSIM_SIGMA)).to(device=device, dtype=torch.float64)
    return (g @ g.T).view(1, 1, SSIM_WINDOW, SSIM_WINDOW)


def ssim(a: torch.Tensor, b: torch.Tensor, *, crop_border: int = 0, y_only: bool = True) -> torch.Tensor:
    """SSIM of each image pair, on Y (default) or the mean over R, G, B; (B,) float64 in [-1, 1].

    a, b: (B, 3, H, W) or (3, H, W) in [0, 1], at least 11x11 after cropping `crop_border` per side.
    """
    a, b, single = _prepare(a, b, crop_border, y_only)
    if min(a.shape[-2:]) < SSIM_WINDOW:
        raise ValueError(f"SSIM needs at least {SSIM_WINDOW}x{SSIM_WINDOW} pixels, got {a.shape[-1]}x{a.shape[-2]}")
    c = a.shape[1]
    win = _gaussian_window(a.device).expand(c, 1, SSIM_WINDOW, SSIM_WINDOW)

    def filt(x):  # "valid" filtering: no padded values enter the statistics
        return F.conv2d(x, win, groups=c)

    c1, c2 = (_K1 * 255.0) ** 2, (_K2 * 255.0) ** 2
    mu_a, mu_b = filt(a), filt(b)
    var_a = filt(a * a) - mu_a**2
    var_b = filt(b * b) - mu_b**2
    cov = filt(a * b) - mu_a * mu_b
    s = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    # Mean over pixels and channels = mean of per-channel SSIMs (every channel has the same size).
    return _out(s.flatten(1).mean(dim=1), single)


def color_psnr(a: torch.Tensor, b: torch.Tensor, *, crop_border: int = 0) -> torch.Tensor:
    """PSNR in dB between the per-channel means of each pair (FSSR's PSNR_col); (B,) float64.

    Measures only global colour/brightness shift: 10 log10(255^2 / mean_c (mean(a_c) - mean(b_c))^2).
    """
    a, b, single = _prepare(a, b, crop_border, y_only=False)
    ma, mb = a.mean(dim=(-2, -1)), b.mean(dim=(-2, -1))
    mse = (ma - mb).pow(2).mean(dim=1)
    return _out(10.0 * torch.log10(255.0**2 / mse), single)


class LPIPS(torch.nn.Module):
    """LPIPS distance (AlexNet backbone, linear heads v0.1) on images in [0, 1]; lower is closer.

    The backbone comes from `srpipe.engine.weights.lpips_model` (never a random one); construction raises
    `srpipe.engine.weights.MissingWeightsError` when the AlexNet file is absent. Frozen, eval mode.
    """

    def __init__(self, *, net: str = "alex", weights_dir=None):
        super().__init__()
        from srpipe.engine import weights

        self.model = weights.lpips_model(net, weights_dir)

    @torch.no_grad()
    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """a, b: (B, 3, H, W) or (3, H, W) in [0, 1] -> (B,) distances (0-d for one image)."""
        a, b, single = _pair(a, b)
        d = self.model(a.float() * 2 - 1, b.float() * 2 - 1)  # LPIPS expects [-1, 1]
        return _out(d.flatten().double(), single)


# ---------------------------------------------------------------- folders (`srpipe eval`)


@dataclass(frozen=True)
class EvalConfig:
    """What `srpipe eval` computes (results depend on every field)."""

    scale: int = 4  # SR factor: the default border crop and GT mod-crop (BasicSR convention)
    crop_border: int | None = None  # pixels cut on each side before every metric; None = `scale`
    lpips: bool = True  # compute LPIPS when its AlexNet weights resolve (a note otherwise)

    def __post_init__(self):
        if self.scale < 1:
            raise ValueError(f"scale must be >= 1, got {self.scale}")
        if self.crop_border is not None and self.crop_border < 0:
            raise ValueError(f"crop_border must be >= 0, got {self.crop_border}")

    @property
    def border(self) -> int:
        return self.scale if self.crop_border is None else self.crop_border


METRIC_COLUMNS = ("psnr_y", "ssim_y", "psnr_rgb", "ssim_rgb", "psnr_color", "lpips")


def match_files(sr_dir: str | Path, gt_dir: str | Path) -> list[tuple[Path, Path]]:
    """(sr, gt) pairs matched by file name without extension; an error names any unmatched file."""
    from srpipe.io.imageio import list_images

    sr = {p.stem: p for p in list_images(sr_dir)}
    gt = {p.stem: p for p in list_images(gt_dir)}
    if not sr:
        raise SrpipeError(f"no images in {sr_dir}")
    if not gt:
        raise SrpipeError(f"no images in {gt_dir}")
    only_sr = sorted(set(sr) - set(gt))
    only_gt = sorted(set(gt) - set(sr))
    if only_sr or only_gt:
        parts = []
        if only_sr:
            parts.append(f"{len(only_sr)} in {sr_dir} without a GT of the same name ({_few(sr, only_sr)})")
        if only_gt:
            parts.append(f"{len(only_gt)} in {gt_dir} without an SR image ({_few(gt, only_gt)})")
        raise SrpipeError(
            "unmatched images: " + "; ".join(parts) + "; SR and GT files must share names (extension may differ)"
        )
    return [(sr[k], gt[k]) for k in sorted(sr)]


def _few(files: dict, keys: list[str], n: int = 5) -> str:
    names = [files[k].name for k in keys[:n]]
    return ", ".join(names) + (f", ... {len(keys) - n} more" if len(keys) > n else "")


def _fit_gt(sr: torch.Tensor, gt: torch.Tensor, scale: int, sr_path: Path, gt_path: Path) -> torch.Tensor:
    """GT cropped to the SR size when it only lacks BasicSR's mod-crop; otherwise a size error."""
    (hs, ws), (hg, wg) = sr.shape[-2:], gt.shape[-2:]
    if (hs, ws) == (hg, wg):
        return gt
    if (hs, ws) == (hg - hg % scale, wg - wg % scale):
        return gt[..., :hs, :ws]  # SR of a mod-cropped LR: compare with the mod-cropped GT (BasicSR)
    hint = ""
    if (hs * scale, ws * scale) == (hg - hg % scale, wg - wg % scale):
        hint = f" (the SR image is 1/{scale} of GT: is --sr a low-resolution folder?)"
    raise SrpipeError(f"size mismatch: {sr_path} is {ws}x{hs} but {gt_path} is {wg}x{hg}{hint}")


def evaluate_folders(
    sr_dir, gt_dir, cfg: EvalConfig = EvalConfig(), *, weights_dir=None, device="cpu", progress=None
) -> dict:
    """Compare each SR image with the GT image of the same name.

    Returns ``{"images": [{"name", "psnr_y", "ssim_y", "psnr_rgb", "ssim_rgb", "psnr_color",
    "lpips"}...], "summary": {column: mean}, "config": {...}, "notes": [...]}``; `lpips` is None
    when its weights do not resolve (the note says why). `progress(i, n)` is called per image.
    """
    from srpipe.io.imageio import read_image
    from srpipe.engine.weights import MissingWeightsError

    pairs = match_files(sr_dir, gt_dir)
    notes: list[str] = []
    lp = None
    if cfg.lpips:
        try:
            lp = LPIPS(weights_dir=weights_dir).to(device)
        except MissingWeightsError as e:
            notes.append(f"LPIPS skipped: {e}")
    border = cfg.border
    rows = []
    small: list[str] = []
    for i, (sp, gp) in enumerate(pairs):
        sr, _ = read_image(sp)
        gt, _ = read_image(gp)
        gt = _fit_gt(sr, gt, cfg.scale, sp, gp)
        if min(sr.shape[-2:]) - 2 * border < SSIM_WINDOW:
            raise SrpipeError(
                f"{sp} is {sr.shape[-1]}x{sr.shape[-2]}: too small for SSIM after cropping {border} px per side; "
                "lower --crop-border"
            )
        a, b = sr.unsqueeze(0).to(device), gt.unsqueeze(0).to(device)
        row = {
            "name": sp.stem,
            "psnr_y": float(psnr(a, b, crop_border=border)),
            "ssim_y": float(ssim(a, b, crop_border=border)),
            "psnr_rgb": float(psnr(a, b, crop_border=border, y_only=False)),
            "ssim_rgb": float(ssim(a, b, crop_border=border, y_only=False)),
            "psnr_color": float(color_psnr(a, b, crop_border=border)),
            "lpips": None,
        }
        if lp is not None:
            ac, bc = _crop(a, border), _crop(b, border)
            if min(ac.shape[-2:]) >= LPIPS_MIN_SIZE:
                row["lpips"] = float(lp(ac, bc))
            else:
                small.append(sp.name)
        rows.append(row)
        if progress is not None:
            progress(i + 1, len(pairs))
    summary = {}
    for col in METRIC_COLUMNS:
        vals = [r[col] for r in rows if r[col] is not None]
        # PSNR of an identical pair is inf; a mean over finite values would hide that, so keep inf.
        summary[col] = (sum(vals) / len(vals)) if vals else None
    if small:
        notes.append(
            f"LPIPS needs at least {LPIPS_MIN_SIZE}x{LPIPS_MIN_SIZE} pixels after the border crop; "
            f"left out for {len(small)} image(s): {', '.join(small[:5])}"
        )
    if any(math.isinf(r["psnr_y"]) for r in rows):
        notes.append("some SR images equal their GT exactly (PSNR = inf)")
    return {
        "images": rows,
        "summary": summary,
        "config": {"scale": cfg.scale, "crop_border": border, "lpips": lp is not None, "count": len(rows)},
        "notes": notes,
    }
