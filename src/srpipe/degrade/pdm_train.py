"""`degrade-train --method pdm`: learn a blur kernel, noise and JPEG stage from unpaired folders.

Read top to bottom: the forward (`synthesize`), one discriminator step, one generator step, then
`train`, which builds everything and hands one step function to the shared loop
(`srpipe.engine.loop.run_steps`: resume, checkpoints, stop signals, the bad-step guard, logging).

The data: random crops of the clean HR photos go through the model; the discriminator's real
samples are random crops of the real-LR photos, unpaired with them. HR crops carry a margin so
that the LR crop D sees has no padding effects (a valid blur, then the noise net's zero-padded
border trimmed): D must not be able to tell synthetic crops by their edges.

Run folder: config.json, ckpt/, log.csv, tb/, samples/, split.json, generator.safetensors (header
arch "PDMDegrader", meta method "pdm"), jpeg.json, kernel_mean.npy, kernel_draws.npy, kernel.png,
kernel.json (what was learned: kernel width, anisotropy, centre, the noise level, the JPEG stage)
and degradation.json (realism on the held-out real LR).
"""

from __future__ import annotations

import time
from functools import partial
from pathlib import Path

import torch

from srpipe.config import RunOptions, to_dict
from srpipe.degrade import contract
from srpipe.degrade.config import PDMConfig
from srpipe.degrade.data import CropStream, ImageSet, image_banks, load_sets, random_crops
from srpipe.degrade.diffjpeg import diff_jpeg
from srpipe.degrade.losses import d_input
from srpipe.degrade.pdm import PatchDiscriminator, PDMDegrader, hr_crop_for, lr_margin, round8
from srpipe.degrade.train import estimate_jpeg, jpeg_quality_pool, lr_at, realism_check
from srpipe.engine import ckpt
from srpipe.engine.accel import ComputeSettings, StepGuard
from srpipe.engine.loop import PhaseInfo, resume
from srpipe.engine.training import StepNets, TrainingRun, set_lr, training_run
from srpipe.errors import SrpipeError
from srpipe.eval.realism.measures import RealismConfig
from srpipe.io.files import write_json, write_npy
from srpipe.io.kernels import kernel_picture, kernel_stats
from srpipe.log import info

LOG_FIELDS = ["lr", "d_real", "d_fake", "adv", "energy", "spectrum", "noise_sigma", "k_width", "g_total", "skipped"]


def synthesize(G, hr, cfg: PDMConfig, *, jpeg_q: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """(synthetic LR crops as make-pairs writes them, the noise in them) from HR crops with a margin."""
    lr, noise = G(hr, valid=True, trim=lr_margin(cfg.noise.layers))
    lr = round8(lr.clamp(0, 1))  # what a PNG stores; straight-through, so the gradient passes
    return (lr if jpeg_q is None else diff_jpeg(lr, jpeg_q)), noise


def gan_loss(logits: torch.Tensor, target_real: bool, kind: str, other: torch.Tensor | None = None) -> torch.Tensor:
    """LSGAN (Mao et al. 2017): mean (D - target)^2; RaGAN (Jolicoeur-Martineau 2018): BCE of D minus
    the mean logit of the other kind."""
    if kind == "ragan":
        rel = logits - other.mean()
        target = torch.ones_like(rel) if target_real else torch.zeros_like(rel)
        return torch.nn.functional.binary_cross_entropy_with_logits(rel, target)
    return (logits - (1.0 if target_real else 0.0)).pow(2).mean()


def judge(D, x: torch.Tensor, cfg: PDMConfig, *, compute: ComputeSettings) -> torch.Tensor:
    """D's logits for LR crops: of the crops themselves, or of their high-pass (`loss.d_highpass`)."""
    gain = cfg.loss.d_highpass
    return compute.run(D, d_input(x, kernel=5, kind="box", gain=gain) - 0.5 if gain else x)


def d_step(G, D, opt_d, hr, real, cfg: PDMConfig, *, compute: ComputeSettings, guard: StepGuard, jpeg_q=None) -> dict:
    """One discriminator update: real-LR crops -> real, synthetic LR crops -> fake."""
    with torch.no_grad():
        fake, _ = synthesize(G, hr, cfg, jpeg_q=jpeg_q)
    logits_real, logits_fake = judge(D, real, cfg, compute=compute), judge(D, fake, cfg, compute=compute)
    kind = cfg.loss.gan
    loss_real = gan_loss(logits_real, True, kind, logits_fake.detach())
    loss_fake = gan_loss(logits_fake, False, kind, logits_real.detach())
    opt_d.zero_grad(set_to_none=True)
    guard.backward(loss_real + loss_fake)
    guard.step(opt_d)
    return {"d_real": loss_real.detach(), "d_fake": loss_fake.detach()}


def g_step(G, D, opt_g, hr, real, cfg: PDMConfig, *, compute: ComputeSettings, guard: StepGuard, jpeg_q=None) -> dict:
    """One update of kernel and noise nets: adversarial + noise energy (+ spectrum match). No loss ties
    the LR to any fixed downscale (no colour loss): the kernel is free to become as blurry or sharp as
    the real LR."""
    for p in D.parameters():
        p.requires_grad_(False)
    fake, noise = synthesize(G, hr, cfg, jpeg_q=jpeg_q)
    logits_fake = judge(D, fake, cfg, compute=compute)
    other = judge(D, real, cfg, compute=compute).detach() if cfg.loss.gan == "ragan" else None
    adv = gan_loss(logits_fake, True, cfg.loss.gan, other)
    if cfg.loss.gan == "ragan":
        adv = 0.5 * (adv + gan_loss(other, False, "ragan", logits_fake))
    energy = noise.pow(2).mean()
    total = cfg.loss.w_adv * adv + cfg.noise.w_energy * energy
    spectrum = spectrum_loss(fake, real) if cfg.loss.w_spectrum > 0 else torch.zeros((), device=fake.device)
    total = total + cfg.loss.w_spectrum * spectrum
    opt_g.zero_grad(set_to_none=True)
    guard.backward(total)
    if cfg.optim.grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(G.parameters(), cfg.optim.grad_clip, error_if_nonfinite=False)
    guard.step(opt_g)
    for p in D.parameters():
        p.requires_grad_(True)
    sigma = noise.detach().float().std() * 255
    out = {"adv": adv.detach(), "energy": energy.detach(), "spectrum": spectrum.detach(), "noise_sigma": sigma}
    out["g_total"] = total.detach()
    return out | {"k_width": kernel_width(ckpt.unwrap(G).kernel.centre_kernel().detach())}


def log_spectrum(x: torch.Tensor) -> torch.Tensor:
    """Batch-mean log power spectrum (h, w) of the luma of (B, 3, h, w) crops, Hann-windowed, DC removed."""
    y = 0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2]
    y = y - y.mean((-1, -2), keepdim=True)
    h, w = y.shape[-2:]
    win = torch.outer(torch.hann_window(h, device=x.device), torch.hann_window(w, device=x.device))
    power = torch.fft.fft2(y * win).abs().pow(2).mean(0)
    return torch.log(power + 1e-6)


def spectrum_loss(fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """Mean squared difference of the two batches' log power spectra, after removing their offset in the
    low band (`eval-degradation`'s reference band, 1/32 to 1/8 cycles per pixel). A sum-to-one kernel
    leaves that band nearly untouched, so the offset there is the two photo sets' contrast, not blur:
    left in, it pushes the kernel wider."""
    diff = log_spectrum(fake.float()) - log_spectrum(real.float())
    h, w = diff.shape
    fy, fx = torch.fft.fftfreq(h, device=diff.device), torch.fft.fftfreq(w, device=diff.device)
    radius = (fy[:, None] ** 2 + fx[None] ** 2).sqrt()
    low_from, low_to = RealismConfig.low_band
    low = (radius >= low_from) & (radius <= low_to)
    sq = (diff - diff[low].mean()).pow(2) if low.any() else diff.pow(2)
    return (sq.sum() - sq[0, 0]) / (sq.numel() - 1)


def kernel_width(k: torch.Tensor) -> torch.Tensor:
    """sqrt of half the trace of a kernel's second-moment matrix (HR px), on the device: a log column."""
    r = torch.arange(k.shape[-1], device=k.device, dtype=k.dtype) - (k.shape[-1] - 1) / 2
    return ((k.sum(1) * r**2).sum() / 2 + (k.sum(0) * r**2).sum() / 2).clamp(min=0).sqrt()


def model_args(cfg: PDMConfig) -> tuple[dict, dict]:
    """Constructor arguments of the degrader and of D, as the weights headers record them."""
    K, N = cfg.kernel, cfg.noise
    g_args = {
        "scale": cfg.data.scale,
        "kernel_size": cfg.kernel_size,
        "z_dim": K.z_dim,
        "hidden": K.hidden,
        "init_sigma": cfg.init_sigma,
        "form": K.form,
        "noise_features": N.features,
        "noise_layers": N.layers,
        "random_channels": N.random_channels,
        "max_level": N.max_level,
    }
    d_args = {"features": cfg.loss.d_features, "layers": cfg.loss.d_layers, "spectral_norm": cfg.loss.spectral_norm}
    return g_args, d_args


def optimizers(G: PDMDegrader, D, cfg: PDMConfig, tr: TrainingRun) -> tuple[torch.optim.Optimizer, ...]:
    """Adam for the degrader (the kernel MLP as its own group: `optim.lr_kernel`) and for D."""
    o = cfg.optim
    betas = (o.beta1, o.beta2)
    groups = [
        {"params": G.kernel.parameters(), "lr": o.lr_kernel or o.lr},
        {"params": G.noise.parameters(), "lr": o.lr},
    ]
    return tr.adam(groups, lr=o.lr, betas=betas), tr.adam(D.parameters(), lr=o.lr_d or o.lr, betas=betas)


def set_lrs(step: int, cfg: PDMConfig, opt_g, opt_d) -> float:
    """The schedule of `degrade.train.lr_at` on every group, keeping each group's ratio to `optim.lr`."""
    o = cfg.optim
    factor = lr_at(step - 1, o) / o.lr
    opt_g.param_groups[0]["lr"] = (o.lr_kernel or o.lr) * factor
    opt_g.param_groups[1]["lr"] = o.lr * factor
    set_lr(opt_d, (o.lr_d or o.lr) * factor)
    return o.lr * factor


def train_step(step: int, guard: StepGuard, *, g: StepNets, d: StepNets, opts, stream: CropStream, cfg, compute):
    """One training step for `run_steps`: the learning rates, a batch, D's update, then G's."""
    opt_g, opt_d = opts
    lr = set_lrs(step, cfg, opt_g, opt_d)
    hr, real, jpeg_q = stream.next(step)
    d_losses = d_step(g.train, d.train, opt_d, hr, real, cfg, compute=compute, guard=guard, jpeg_q=jpeg_q)
    g_losses = g_step(g.train, d.frozen, opt_g, hr, real, cfg, compute=compute, guard=guard, jpeg_q=jpeg_q)
    return lr, {**d_losses, **g_losses}


def train(cfg: PDMConfig, *, hr_dir, real_lr_dir, out_dir, run: RunOptions = RunOptions()) -> Path:
    """Train the pdm degradation model; returns the path of `generator.safetensors`. Resumes a run in `out_dir`.

    Under torchrun (WORLD_SIZE > 1) every process runs this with DDP; rank 0 writes the files.
    """
    if real_lr_dir is None:
        raise SrpipeError("degrade-train --method pdm needs a real-LR folder (--real-lr)")
    hr_dir, real_lr_dir, data, optim = Path(hr_dir), Path(real_lr_dir), cfg.data, cfg.optim
    record = {"stage": "degrade-train", "method": "pdm", "config": to_dict(cfg)}
    record["inputs"] = {"hr": str(hr_dir.resolve()), "lr": str(real_lr_dir.resolve())}
    hr_crop = hr_crop_for(data.lr_crop, data.scale, cfg.kernel_size, cfg.noise.layers)
    with training_run(run, batch=optim.batch, batch_what="batch (optim.batch)") as tr:
        info(
            f"pdm x{data.scale}: {cfg.kernel_size}x{cfg.kernel_size} {cfg.kernel.form} kernel from a "
            f"{cfg.kernel.z_dim}-value code, noise net, JPEG in the loop: {cfg.jpeg.in_loop}; "
            f"{cfg.loss.gan} D on {data.lr_crop}-px LR crops"
        )
        hr_set, real_set, held_out, listing = load_sets(cfg, hr_dir, real_lr_dir, hr_crop)
        jpeg_est = estimate_jpeg(real_lr_dir)
        out = tr.open(out_dir, record, clear=contract.run_files("pdm"), split=listing)

        torch.manual_seed(cfg.seed)
        g_args, d_args = model_args(cfg)
        G, D = tr.place(PDMDegrader(**g_args)), tr.place(PatchDiscriminator(**d_args))
        opt_g, opt_d = optimizers(G, D, cfg, tr)
        gen = torch.Generator().manual_seed(cfg.seed + 1)  # data stream: crops, flips, rotations (global batch)
        nets = {"generator": (G, "PDMDegrader", g_args), "discriminator": (D, "PatchDiscriminator", d_args)}
        state = tr.checkpoint(out / contract.CKPT, nets, {"opt_g": opt_g, "opt_d": opt_d}, gen)
        start = resume(state, str(out), optim.iters)

        banks = image_banks(hr_set, real_set, device=tr.device, placement=run.data_placement)
        stream = CropStream(*banks, gen, tr.rows, cfg, hr_crop, jpeg_quality_pool(cfg, jpeg_est))
        tr.announce(f"images in {banks[0].placement} memory")
        step = partial(
            train_step,
            g=tr.for_steps(G),
            d=tr.for_steps(D),
            opts=(opt_g, opt_d),
            stream=stream,
            cfg=cfg,
            compute=tr.compute,
        )
        log = tr.log(out, contract.LOG, LOG_FIELDS, start=start, config=record)
        shown = {"d_real": "d_real", "d_fake": "d_fake", "k_width": "kernel", "noise_sigma": "noise"}
        t0 = time.time()
        tr.steps(
            step,
            phase=PhaseInfo("degrade-train", shown=shown),
            iters=optim.iters,
            start=start,
            state=state,
            log=log,
            guarded=[D],
        )
        G.eval()
        if tr.main:
            finish(G, cfg, hr_set, jpeg_est, out, tr.device)
            info(f"trained {optim.iters - start} steps in {time.time() - t0:.1f} s")
            if held_out:
                realism_check(G, hr_set, held_out, data.scale, out, run, tr.device)
    return out / contract.GENERATOR


@torch.no_grad()
def measured_noise(G: PDMDegrader, hr_set: ImageSet, cfg: PDMConfig, device, n: int = 16) -> float:
    """Standard deviation of the learned noise on fixed HR crops, in 8-bit levels."""
    gen = torch.Generator().manual_seed(12345)
    hr = random_crops(hr_set.images, n, cfg.data.hr_crop, gen).to(device)
    lr = G.blur(hr, G.draw_z(n, gen))
    _, noise = G.add_noise(lr, torch.randn(n, G.noise.random_channels, *lr.shape[2:], generator=gen).to(device))
    return float(noise.std() * 255)


def finish(G: PDMDegrader, cfg: PDMConfig, hr_set, jpeg_est, out: Path, device) -> dict:
    """Write what was learned (kernels, their picture and statistics, the weights) and print it."""
    from srpipe.io.imageio import write_png

    mean, draws = G.mean_kernel(draws=256, seed=cfg.seed)
    shown = draws[:4]
    write_npy(out / contract.KERNEL_MEAN, mean.numpy())
    write_npy(out / contract.KERNEL_DRAWS, shown.numpy())
    write_png(out / contract.KERNEL_PICTURE, kernel_picture([mean, *shown], zoom=8))
    stats = kernel_stats(mean)
    spread = float(torch.stack([torch.tensor(kernel_stats(k)["width"]) for k in draws[:32]]).std())
    summary = {
        "method": "pdm",
        "scale": cfg.data.scale,
        "size": cfg.kernel_size,
        "form": cfg.kernel.form,
        "stats": stats,
        "width_spread": round(spread, 4),
        "draw_stats": [kernel_stats(k) for k in shown],
        "noise_sigma": round(measured_noise(G, hr_set, cfg, device), 3),
        "jpeg": jpeg_est.to_json(),
    }
    if cfg.kernel.form == "sharpened":
        with torch.no_grad():
            amount, radius = G.kernel.unsharp(G.draw_z(256, torch.Generator().manual_seed(cfg.seed)))
        summary["unsharp"] = {"amount": round(float(amount.mean()), 4), "radius": round(float(radius.mean()), 4)}
    write_json(out / contract.KERNEL, summary)
    write_json(out / contract.JPEG, jpeg_est.to_json())
    g_args, _ = model_args(cfg)
    meta = {"stage": "degrade-train", "method": "pdm", "scale": cfg.data.scale, "config": to_dict(cfg)}
    meta |= {"jpeg": jpeg_est.to_json(), "kernel": stats}
    ckpt.save_weights(out / contract.GENERATOR, G.state_dict(), arch="PDMDegrader", args=g_args, meta=meta)
    info(describe(summary))
    return summary


def describe(summary: dict) -> str:
    """One line of what a pdm run learned (degrade-train prints it; the report shows it)."""
    st = summary["stats"]
    sharpen = f", sharpening mass {st['negative_mass']:.3f}" if st["negative_mass"] > 0 else ""
    if "unsharp" in summary:  # negative: the LR is softened on its own grid
        sharpen += f", unsharp mask {summary['unsharp']['amount']:+.2f} at {summary['unsharp']['radius']:.2f} LR px"
    return (
        f"learned kernel: width {st['width']:.2f} HR px (sigma {st['sigma_major']:.2f} x {st['sigma_minor']:.2f}, "
        f"anisotropy {st['anisotropy']:.2f} at {st['angle_deg']:.0f} deg{sharpen}); noise {summary['noise_sigma']:.2f} "
        f"levels; JPEG: {summary['jpeg'].get('kind', 'none')}"
    )
