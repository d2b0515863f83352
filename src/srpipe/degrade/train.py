"""`degrade-train` (DSGAN): the steps and their set-up, read from top to bottom.

Truly unpaired (the official code drew both domains from one folder, real-world-sr #2/#9/#11):
the generator input is the bicubic downscale of a random clean-HR crop, the discriminator's real
samples are random crops of the real-LR folder (or, with `data.same_domain`, native-resolution
crops of the HR folder as in the official code).

Read in order: the schedule and the forward (`lr_at`, `synthesize`, `judge`), one discriminator
step, one generator step, `train_step` (both, on one batch), then `train`, which builds everything
and hands `train_step` to the shared loop (`srpipe.engine.training`); the helpers follow. The data
(folders, held-out split, the crop stream) is in `srpipe.degrade.data`, shared with pdm.

Run folder: config.json, ckpt/, log.csv, tb/ (TensorBoard events), samples/, generator.safetensors
(last), split.json, degradation.json (realism table on the held-out real LR, when srpipe.eval.realism is
available), jpeg.json (the real LR's JPEG stage, also in the generator's header).
"""

from __future__ import annotations

import time
from functools import partial
from pathlib import Path

import torch
from torch import nn

from srpipe.config import RunOptions, to_dict
from srpipe.degrade import contract, losses
from srpipe.degrade.archs import DSGANDiscriminator, DSGANGenerator
from srpipe.degrade.config import DegradeConfig, LossConfig, OptimConfig
from srpipe.degrade.data import CropStream, ImageSet, image_banks, load_sets, random_crops
from srpipe.degrade.diffjpeg import diff_jpeg
from srpipe.engine import ckpt
from srpipe.engine.accel import ComputeSettings, StepGuard
from srpipe.engine.loop import PhaseInfo, resume
from srpipe.engine.runlog import RunLog
from srpipe.engine.training import StepNets, every, set_lr, training_run
from srpipe.errors import SrpipeError
from srpipe.io.files import write_json
from srpipe.io.jpeg import summarize as jpeg_summary
from srpipe.io.resize import bicubic_down
from srpipe.log import info

LOG_FIELDS = ["lr", "d_real", "d_fake", "color", "adv", "perceptual", "g_total", "skipped"]


def lr_at(step: int, optim: OptimConfig) -> float:
    """Constant lr, then linear decay to 0 from `decay_start * iters` (official LambdaLR, per step)."""
    start = int(optim.decay_start * optim.iters)
    if step < start:
        return optim.lr
    return optim.lr * max(0.0, (optim.iters - step) / max(1, optim.iters - start))


def synthesize(G, lq, *, compute: ComputeSettings, jpeg_q: torch.Tensor | None) -> torch.Tensor:
    """G's LR for bicubic LR `lq`, JPEG-compressed at qualities `jpeg_q` (B,) when given (as make-pairs writes it)."""
    fake = compute.run(G, lq)
    return fake if jpeg_q is None else diff_jpeg(fake.float(), jpeg_q)


def judge(
    D, real, fake, loss_cfg: LossConfig, *, compute: ComputeSettings, need_real: bool = True
) -> tuple[torch.Tensor | None, torch.Tensor]:
    """D's logits on the high-passes of real and synthetic LR.

    `loss.d_batch = "joint"` runs both kinds as one batch, so batch norm normalises them together;
    "separate" (official) runs two batches, and skips the real one when `need_real` is false.
    """

    def hp(t):
        return losses.d_input(t, kernel=loss_cfg.kernel, kind=loss_cfg.filter, gain=loss_cfg.hp_gain)

    if loss_cfg.d_batch == "joint":
        logits = compute.run(D, torch.cat([hp(real), hp(fake)]))
        return logits[: len(real)], logits[len(real) :]
    return (compute.run(D, hp(real)) if need_real else None), compute.run(D, hp(fake))


def d_step(
    G,
    D,
    opt_d,
    lq,
    real,
    cfg: DegradeConfig,
    *,
    compute: ComputeSettings,
    guard: StepGuard,
    jpeg_q: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """One discriminator update: real-LR high-passes -> 1, synthetic high-passes -> 0.

    Networks run under `compute` (bf16 autocast on CUDA); the losses are fp32. A non-finite loss skips
    the update on the device (`guard`), without a host sync.
    """
    with torch.no_grad():
        fake = synthesize(G, lq, compute=compute, jpeg_q=jpeg_q)
    logits_real, logits_fake = judge(D, real, fake, cfg.loss, compute=compute)
    loss_real, loss_fake = losses.bce_real(logits_real), losses.bce_fake(logits_fake)
    loss = loss_real + loss_fake
    opt_d.zero_grad(set_to_none=True)
    guard.backward(loss)
    guard.step(opt_d)
    return {"d_real": loss_real.detach(), "d_fake": loss_fake.detach()}


def g_step(
    G,
    D,
    opt_g,
    lq,
    real,
    perceptual,
    cfg: DegradeConfig,
    *,
    compute: ComputeSettings,
    guard: StepGuard,
    jpeg_q: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """One generator update: colour (low-pass L1) + adversarial (high-pass D) + perceptual.

    The adversarial term uses the discriminator *after* this step's update. The official code
    reused the scores D gave before its update; we deviate on purpose, as in standard alternating
    GAN training, so G always trains against the current D. `D` here is the plain module (not DDP):
    its weights are frozen for this step, so there are no gradients of D to synchronise.
    """
    loss_cfg = cfg.loss
    for p in D.parameters():
        p.requires_grad_(False)
    fake = synthesize(G, lq, compute=compute, jpeg_q=jpeg_q)
    out = {"color": losses.color_loss(fake, lq, kernel=loss_cfg.kernel, kind=loss_cfg.filter)}
    total = loss_cfg.w_color * out["color"]
    if loss_cfg.w_adv > 0:
        _, logits_fake = judge(D, real, fake, loss_cfg, compute=compute, need_real=False)
        out["adv"] = losses.bce_real(logits_fake)
        total = total + loss_cfg.w_adv * out["adv"]
    if perceptual is not None and loss_cfg.w_perceptual > 0:
        out["perceptual"] = compute.run(perceptual, fake, lq)
        total = total + loss_cfg.w_perceptual * out["perceptual"]
    opt_g.zero_grad(set_to_none=True)
    guard.backward(total)
    guard.step(opt_g)
    for p in D.parameters():
        p.requires_grad_(True)
    out["g_total"] = total
    return {k: v.detach() for k, v in out.items()}


def train_step(
    step: int, guard: StepGuard, *, g: StepNets, d: StepNets, opts, stream: CropStream, perceptual, cfg, compute
) -> tuple[float, dict[str, torch.Tensor]]:
    """One training step for `run_steps`: the learning rates, a batch, D's update, then G's.

    D's step runs the plain G (no DDP, no compile): G only makes D's fake samples there, with no gradients.
    """
    opt_g, opt_d = opts
    lr = lr_at(step - 1, cfg.optim)
    set_lr(opt_g, lr)
    set_lr(opt_d, lr * cfg.optim.d_lr_scale)
    hr, real, jpeg_q = stream.next(step)
    lq = bicubic_down(hr, cfg.data.scale)
    d_losses = d_step(g.net, d.train, opt_d, lq, real, cfg, compute=compute, guard=guard, jpeg_q=jpeg_q)
    g_losses = g_step(g.train, d.frozen, opt_g, lq, real, perceptual, cfg, compute=compute, guard=guard, jpeg_q=jpeg_q)
    return lr, {**d_losses, **g_losses}


def train(cfg: DegradeConfig, *, hr_dir, real_lr_dir, out_dir, run: RunOptions = RunOptions()) -> Path:
    """Train DSGAN; returns the path of `generator.safetensors`. Resumes a run in `out_dir`.

    `real_lr_dir` is the real-LR folder (None with `data.same_domain`). Under torchrun (WORLD_SIZE > 1)
    every process runs this with DDP; rank 0 writes the files.
    """
    data, optim = cfg.data, cfg.optim
    if not data.same_domain and real_lr_dir is None:
        raise SrpipeError("a real-LR folder is required unless data.same_domain is true")
    real_dir = None if data.same_domain else Path(real_lr_dir)  # None: D's real samples are crops of the HR photos
    record = {"stage": "degrade-train", "config": to_dict(cfg)}
    record["inputs"] = {"hr": str(Path(hr_dir).resolve()), "lr": None if real_dir is None else str(real_dir.resolve())}
    with training_run(run, batch=optim.batch, batch_what="batch (optim.batch)") as tr:
        kind = "same-domain" if data.same_domain else "unpaired"
        info(f"DSGAN x{data.scale}, {kind}; active losses: {', '.join(contract.loss_terms(cfg))}")
        perceptual = perceptual_loss(cfg, run, tr.compute)  # before reading data or touching the run folder
        hr_set, real_set, held_out, listing = load_sets(cfg, hr_dir, real_dir, data.hr_crop)
        jpeg_est = estimate_jpeg(hr_dir if real_dir is None else real_dir)
        jpeg_pool = jpeg_quality_pool(cfg, jpeg_est)
        out = tr.open(out_dir, record, clear=contract.run_files("dsgan"), split=listing)

        torch.manual_seed(cfg.seed)
        g_args, d_args = model_args(cfg)
        G, D = tr.place(DSGANGenerator(**g_args)), tr.place(DSGANDiscriminator(**d_args))
        betas = (optim.beta1, optim.beta2)
        opt_g, opt_d = (tr.adam(net.parameters(), lr=optim.lr, betas=betas) for net in (G, D))
        gen = torch.Generator().manual_seed(cfg.seed + 1)  # data stream: crops, flips, rotations (global batch)
        nets = {"generator": (G, "DSGANGenerator", g_args), "discriminator": (D, "DSGANDiscriminator", d_args)}
        state = tr.checkpoint(out / contract.CKPT, nets, {"opt_g": opt_g, "opt_d": opt_d}, gen)
        start = resume(state, str(out), optim.iters)

        crops = sample_crops(hr_set, real_set, cfg, tr.device)
        banks = image_banks(hr_set, real_set, device=tr.device, placement=run.data_placement)
        # HR corners on multiples of the scale (bicubic grid aligned), crops in the networks' memory format
        stream = CropStream(*banks, gen, tr.rows, cfg, data.hr_crop, jpeg_pool, data.scale, tr.compute.channels_last)
        g, d = tr.for_steps(G), tr.for_steps(D)
        tr.announce(f"images in {banks[0].placement} memory")
        step = partial(
            train_step, g=g, d=d, opts=(opt_g, opt_d), stream=stream, perceptual=perceptual, cfg=cfg, compute=tr.compute
        )
        log = tr.log(out, contract.LOG, LOG_FIELDS, start=start, config=record)
        samples = partial(write_samples, G=G, crops=crops, scale=data.scale, out=out, log=log)
        shown = {k: k for k in ("d_real", "d_fake", "color", "g_total")}
        t0 = time.time()
        tr.steps(
            step,
            phase=PhaseInfo("degrade-train", shown=shown),
            iters=optim.iters,
            start=start,
            state=state,
            log=log,
            guarded=[D],
            after_step=every(run.sample_every, samples) if tr.main else None,
        )
        if tr.main:
            samples(optim.iters)
        G.eval()
        if tr.main:
            save_generator(G, g_args, cfg, jpeg_est, out)
            info(f"trained {optim.iters - start} steps in {time.time() - t0:.1f} s")
            if held_out:
                realism_check(G, hr_set, held_out, data.scale, out, run, tr.device)
    return out / contract.GENERATOR


def model_args(cfg: DegradeConfig) -> tuple[dict, dict]:
    """Constructor arguments of G and D, as the weights headers record them."""
    model = cfg.model
    g_args = {
        "features": model.features,
        "res_blocks": model.res_blocks,
        "noise_channels": model.noise_channels,
        "residual": model.residual,
    }
    return g_args, {"features": model.d_features, "spectral_norm": model.d_spectral_norm}


def perceptual_loss(cfg: DegradeConfig, run: RunOptions, compute: ComputeSettings) -> nn.Module | None:
    """The LPIPS network of the perceptual term on the device; None when the term is off.

    Built first, so that missing pretrained weights fail the run before it reads data or writes files.
    """
    if not contract.uses_lpips(cfg):
        return None
    backbone = contract.LPIPS_BACKBONES[cfg.loss.perceptual]  # one of contract.pretrained(cfg)
    return compute.prepare(losses.Perceptual(backbone, run.weights_dir or None))


def sample_crops(hr_set: ImageSet, real_set: ImageSet, cfg: DegradeConfig, device) -> tuple[torch.Tensor, torch.Tensor]:
    """Fixed HR and real-LR crops for the sample grids (their own seed), so grids from different
    steps compare like with like."""
    gen = torch.Generator().manual_seed(12345)
    n = min(4, cfg.optim.batch)
    hr = random_crops(hr_set.images, n, cfg.data.hr_crop, gen).to(device)
    real = random_crops(real_set.images, n, cfg.data.lr_crop, gen).to(device)
    return hr, real


def write_samples(step: int, *, G, crops: tuple[torch.Tensor, torch.Tensor], scale: int, out: Path, log: RunLog | None):
    """samples/step_XXXXXXXX.png (and the TensorBoard image): rows of bicubic LR | G's LR | real LR crop."""
    from torchvision.utils import make_grid

    from srpipe.io.imageio import write_png

    hr, real = crops
    G.eval()
    with torch.no_grad():
        lq = bicubic_down(hr, scale)
        fake = G(lq)
    rows = torch.stack([lq, fake, real], dim=1).flatten(0, 1).float().cpu()
    grid = make_grid(rows, nrow=3, padding=2, pad_value=1.0)
    write_png(out / contract.SAMPLES / contract.sample_file(step), grid)
    if log is not None:
        log.image("samples", step, grid)
    G.train()


def save_generator(G, g_args: dict, cfg: DegradeConfig, jpeg_est, out: Path) -> None:
    """generator.safetensors, its header holding the config, the active losses and the real LR's JPEG
    stage (make-pairs --jpeg auto reads it); jpeg.json beside it."""
    meta = {
        "stage": "degrade-train",
        "scale": cfg.data.scale,
        "config": to_dict(cfg),
        "active_losses": contract.loss_terms(cfg),
        "jpeg": jpeg_est.to_json(),
    }
    write_json(out / contract.JPEG, jpeg_est.to_json())
    ckpt.save_weights(out / contract.GENERATOR, G.state_dict(), arch="DSGANGenerator", args=g_args, meta=meta)


def jpeg_quality_pool(cfg: DegradeConfig, est) -> torch.Tensor | None:
    """Qualities the differentiable JPEG draws from in the loop: the real LR's estimated JPEG stage.

    None when `jpeg.in_loop` is off or the real LR shows no JPEG stage (then G alone must match it).
    """
    if not cfg.jpeg.in_loop or est.kind == "none":
        return None
    pool = list(est.qualities) or list(range(est.qmin, est.qmax + 1))
    info(f"JPEG in the loop: D sees G's output compressed at the real LR's qualities ({jpeg_summary(pool)})")
    return torch.tensor(pool, dtype=torch.float32)


def estimate_jpeg(real_dir):
    """The JPEG stage of the real-LR folder (`srpipe.io.jpeg`), printed; saved as `jpeg.json` and in the
    generator's header at the end, so a lone generator.safetensors keeps it (make-pairs --jpeg auto)."""
    from srpipe.io.imageio import list_images
    from srpipe.io.jpeg import estimate_folder

    est = estimate_folder(list_images(real_dir))
    info(f"JPEG stage of the real LR: {est.describe()}")
    return est


MAX_REALISM_IMAGES = 16  # HR images degraded for the end-of-run realism table (bounded time)


@torch.no_grad()
def realism_check(
    G, hr_set: ImageSet, held_out: list[torch.Tensor], scale: int, out: Path, run: RunOptions, device
) -> dict:
    """Compare the held-out real LR with G's LR and with bicubic LR of the same HR images.

    Writes `degradation.json` next to the generator and prints whether G got closer than bicubic.
    """
    from srpipe.degrade.pairs import degrade_image
    from srpipe.eval.realism import degradation_report
    from srpipe.io.resize import mod_crop

    G.eval()
    hr = [mod_crop(im.float().div(255), scale) for im in hr_set.images[:MAX_REALISM_IMAGES]]
    synthetic = [degrade_image(G, h, scale, device=device) for h in hr]
    report = degradation_report(held_out, synthetic, hr, scale, weights_dir=run.weights_dir or None, device=device)
    write_json(out / contract.DEGRADATION, report)
    closer = [f"{r['metric']}: {r['closer']}" for r in report["rows"] if r.get("closer")]
    info(f"realism vs {len(held_out)} held-out real LR image(s), closer to real: " + ", ".join(closer))
    for note in report.get("notes", []):
        info(f"note: {note}")
    return report
