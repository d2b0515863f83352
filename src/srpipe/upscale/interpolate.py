"""Network interpolation (ESRGAN Sec. 3.4; xinntao/ESRGAN `net_interp.py`).

    theta = (1 - alpha) * theta_PSNR + alpha * theta_GAN

`alpha` weights the **GAN** model, as in ESRGAN's `net_interp.py` (alpha 0 = the PSNR model, 1 = the
GAN model); Real-ESRGAN's `dni_weight` uses the opposite order. Both models must be the same
network: keys, shapes and constructor args are checked and what differs is named.
"""

from __future__ import annotations

from pathlib import Path

import torch

from srpipe.errors import SrpipeError
from srpipe.upscale import contract, interop


class InterpolationError(SrpipeError):
    pass


def check_alpha(alpha: float) -> float:
    if not 0.0 <= alpha <= 1.0:
        raise InterpolationError(f"alpha must be in [0, 1] (0 = PSNR model, 1 = GAN model), got {alpha:g}")
    return float(alpha)


def interpolate(psnr: dict[str, torch.Tensor], gan: dict[str, torch.Tensor], alpha: float) -> dict[str, torch.Tensor]:
    """`(1 - alpha) * psnr + alpha * gan` per tensor; keys and shapes must match."""
    alpha = check_alpha(alpha)
    only_p, only_g = sorted(set(psnr) - set(gan)), sorted(set(gan) - set(psnr))
    if only_p or only_g:
        parts = []
        if only_p:
            parts.append(f"only in the PSNR model: {', '.join(only_p[:4])}{' ...' if len(only_p) > 4 else ''}")
        if only_g:
            parts.append(f"only in the GAN model: {', '.join(only_g[:4])}{' ...' if len(only_g) > 4 else ''}")
        raise InterpolationError("the two models have different layers (" + "; ".join(parts) + ")")
    bad = [f"{k} {tuple(psnr[k].shape)} vs {tuple(gan[k].shape)}" for k in psnr if psnr[k].shape != gan[k].shape]
    if bad:
        raise InterpolationError(
            f"the two models differ in shape: {'; '.join(bad[:4])}{' ...' if len(bad) > 4 else ''}"
        )
    out = {}
    for k, p in psnr.items():
        g = gan[k]
        if p.is_floating_point():
            # computed in float32 at least, so alpha 0 / 1 return the endpoints exactly
            out[k] = ((1 - alpha) * p.float() + alpha * g.float()).to(p.dtype)
        else:  # integer buffers (none in RRDBNet; BN counters elsewhere) are not blended
            out[k] = p.clone()
    return out


def parse_sweep(spec: str) -> list[float]:
    """`start:stop:step` (stop included, as `0:1:0.1` -> 0, 0.1, ..., 1) -> alphas."""
    try:
        start, stop, step = (float(s) for s in spec.split(":"))
    except ValueError:
        raise InterpolationError(f"--sweep {spec!r}: expected START:STOP:STEP, e.g. 0:1:0.1") from None
    if step <= 0 or stop < start:
        raise InterpolationError(f"--sweep {spec!r}: STEP must be > 0 and STOP >= START")
    n = int(round((stop - start) / step))
    alphas = [round(start + i * step, 10) for i in range(n + 1)]
    if alphas[-1] < stop - 1e-9:
        alphas.append(stop)
    return [check_alpha(a) for a in alphas]


def _load_pair(psnr_path, gan_path):
    p_net, p_args, _ = interop.load_generator(psnr_path)
    g_net, g_args, _ = interop.load_generator(gan_path)
    if p_args != g_args:
        diff = ", ".join(
            f"{k} {p_args.get(k)} vs {g_args.get(k)}"
            for k in sorted(set(p_args) | set(g_args))
            if p_args.get(k) != g_args.get(k)
        )
        raise InterpolationError(f"{psnr_path} and {gan_path} are different networks ({diff})")
    return p_net.state_dict(), g_net.state_dict(), p_args


def interpolate_files(
    psnr_path, gan_path, alphas: list[float], out: str | Path, *, sweep: bool = False, export_pth: bool = False
) -> list[Path]:
    """Write one weights file per alpha: `out` itself, or `out/alpha_0.80.safetensors` etc. for a sweep."""
    alphas = [check_alpha(a) for a in alphas]
    p_sd, g_sd, args = _load_pair(psnr_path, gan_path)
    out = Path(out)
    if sweep and out.suffix:
        raise InterpolationError(f"--sweep writes a folder of files; --out {out} looks like a file name")
    if not sweep and out.suffix.lower() != ".safetensors":
        raise InterpolationError(f"--out {out}: use a .safetensors file name (add --export-pth for a BasicSR .pth)")
    written = []
    for a in alphas:
        sd = interpolate(p_sd, g_sd, a)
        target = out / contract.alpha_file(a) if sweep else out
        meta = {
            "stage": "interpolate",
            "alpha": a,
            "psnr_model": str(psnr_path),
            "gan_model": str(gan_path),
            "alpha_means": "weight of the GAN model: (1 - alpha) * PSNR + alpha * GAN",
        }
        written.append(interop.save_generator(target, sd, args, meta=meta))
        if export_pth:
            written.append(interop.export_pth(target.with_suffix(".pth"), sd, args))
    return written
