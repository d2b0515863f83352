"""The held-out pairs of an `sr-train` run: validation, sample grids and the best model's record.

`split_pairs` sets a fraction of the pairs aside (`data.val_fraction`) as centre crops; `evaluate`
runs every `val_every` steps on rank 0: it writes a sample grid (bicubic | SR | HR) to samples/
and TensorBoard, measures PSNR-Y / SSIM-Y (and LPIPS in the GAN phase) of the EMA model, and
rewrites best.json when the model is the best so far.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from srpipe.engine.augment import split
from srpipe.eval import metrics
from srpipe.io.files import write_json
from srpipe.io.resize import bicubic_up
from srpipe.log import warn
from srpipe.upscale import contract
from srpipe.upscale.archs import unshuffle_factor
from srpipe.upscale.config import UpscaleConfig
from srpipe.upscale.data import Pair, center_pair, load_pairs

VAL_MAX_HR = 512  # validation uses a centre crop of at most this many HR pixels per side (bounded time)
SAMPLE_MAX_LR = 48  # sample grids show at most this many LR pixels per side of each held-out image


@dataclass(frozen=True)
class HeldOut:
    """The held-out pairs: centre crops for validation and for sample grids, evaluated on `device`."""

    val: list[tuple[torch.Tensor, torch.Tensor]]
    samples: list[tuple[torch.Tensor, torch.Tensor]]
    scale: int
    device: torch.device


def split_pairs(cfg: UpscaleConfig, pairs, cache_dir, device) -> tuple[list[Pair], HeldOut, dict]:
    """(training pairs, held-out crops, the split as split.json lists it) of the pairs folder."""
    S = cfg.data.scale
    all_pairs = load_pairs(pairs, S, min_lr=cfg.data.lr_patch, cache_dir=cache_dir, warn=warn)
    train_idx, val_idx = split(len(all_pairs), cfg.data.val_fraction, cfg.seed)
    train_pairs = [all_pairs[i] for i in train_idx]
    unit = unshuffle_factor(S)  # x2/x1 inputs must divide by the pixel-unshuffle factor
    val = [center_pair(all_pairs[i], S, max_lr=VAL_MAX_HR // S, multiple=unit) for i in val_idx]
    sample_src = [all_pairs[i] for i in val_idx[:3]] or train_pairs[:2]
    samples = [center_pair(p, S, max_lr=SAMPLE_MAX_LR, multiple=unit) for p in sample_src]
    listing = {"train": [p.name for p in train_pairs], "held_out": [all_pairs[i].name for i in val_idx]}
    return train_pairs, HeldOut(val, samples, S, device), listing


def describe_split(n_train: int, held: HeldOut) -> str:
    if not held.val:
        return f"{n_train} training pairs, none held out (data.val_fraction = 0): no validation"
    S = held.scale
    bic = [(bicubic_up(lq, S) if S > 1 else lq, gt) for lq, gt in held.val]
    b_psnr = sum(float(metrics.psnr(b, h, crop_border=S)[0]) for b, h in bic) / len(bic)
    return f"{n_train} training pairs, {len(held.val)} held out (bicubic on them: PSNR-Y {b_psnr:.2f} dB)"


@torch.no_grad()
def validate(G, val: list[tuple[torch.Tensor, torch.Tensor]], scale: int, device, lpips=None) -> dict[str, float]:
    """Mean PSNR-Y / SSIM-Y (border `scale` cropped, BasicSR convention) and LPIPS of G on held-out crops."""
    ps, ss, lp = [], [], []
    for lq, gt in val:
        sr = G(lq.to(device)).clamp(0, 1).float().cpu()
        ps.append(float(metrics.psnr(sr, gt, crop_border=scale)[0]))
        ss.append(float(metrics.ssim(sr, gt, crop_border=scale)[0]))
        if lpips is not None:
            lp.append(float(lpips(sr, gt)[0]))
    out = {"val_psnr_y": sum(ps) / len(ps), "val_ssim_y": sum(ss) / len(ss)}
    if lp:
        out["val_lpips"] = sum(lp) / len(lp)
    return out


def evaluate(step: int, *, ema, held: HeldOut, lpips, phase: str, out: Path, log, best: dict, seen: dict) -> dict:
    """Rank 0, every `val_every` steps and at the end: the EMA model's sample grid (samples/ and
    TensorBoard) and validation; `best.json` is rewritten when the model is the best so far."""
    from srpipe.io.imageio import write_png

    if held.samples:
        grid = sample_grid(ema, held.samples, held.scale, held.device)
        write_png(out / contract.SAMPLES / contract.sample_file(phase, step), grid)
        if log is not None:
            log.image("samples", step, grid)
    if not held.val:
        return {}
    v = validate(ema, held.val, held.scale, held.device, lpips)
    if record_best(best, phase, step, v):
        write_json(out / contract.BEST, best)
    seen[step] = v
    return v


def record_best(best: dict, phase: str, step: int, v: dict[str, float]) -> bool:
    """Put `v` into `best[phase]` if it beats the record (LPIPS when measured: lower is better;
    else PSNR-Y: higher is better); whether it did."""
    key = "val_lpips" if "val_lpips" in v else "val_psnr_y"
    prev = best.get(phase)
    better = (
        prev is None
        or prev.get("metric") != key
        or (v[key] < prev["value"] if key == "val_lpips" else v[key] > prev["value"])
    )
    if better:
        best[phase] = {"step": step, "metric": key, "value": v[key], **v}
    return better


def sample_grid(G, crops: list[tuple[torch.Tensor, torch.Tensor]], scale: int, device) -> torch.Tensor:
    """Rows of bicubic | SR | HR for a few held-out crops, as one (3, H, W) image."""
    from torchvision.utils import make_grid

    tiles = []
    with torch.no_grad():
        for lq, gt in crops:
            sr = G(lq.to(device)).clamp(0, 1).float().cpu()
            tiles += [bicubic_up(lq, scale)[0] if scale > 1 else lq[0], sr[0], gt[0]]
    return make_grid(tiles, nrow=3, padding=2, pad_value=1.0)
