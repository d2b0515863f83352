"""`degrade-train`: the DSGAN training loop, all of it in this file.

Truly unpaired (the official code drew both domains from one folder, real-world-sr #2/#9/#11):
the generator input is the bicubic downscale of a random clean-HR crop, the discriminator's real
samples are random crops of the real-LR folder (or, with `data.same_domain`, native-resolution
crops of the HR folder as in the official code).

Run folder: config.json, ckpt/, log.csv, tb/ (TensorBoard events), samples/, generator.safetensors
(last), split.json, degradation.json (realism table on the held-out real LR, when srpipe.eval.realism is
available), jpeg.json (the real LR's JPEG stage, also in the generator's header).
"""

from __future__ import annotations

import time
from pathlib import Path

import torch

from srpipe.engine import accel, augment, ckpt, distributed
from srpipe.engine.accel import Speed, StepGuard
from srpipe.engine.augment import ImageBank, split
from srpipe.config import RunOptions, to_dict
from srpipe.degrade import losses
from srpipe.degrade.archs import DSGANDiscriminator, DSGANGenerator
from srpipe.degrade.config import DegradeConfig, OptimConfig
from srpipe.degrade.diffjpeg import diff_jpeg
from srpipe.io.jpeg import summarize as jpeg_summary
from srpipe.degrade.data import ImageSet, load_folder, random_crops
from srpipe.errors import SrpipeError
from srpipe.engine.loop import Checkpoint, PhaseInfo, resume, run_steps
from srpipe.engine.runlog import RunLog, open_run, write_json
from srpipe.io.resize import bicubic_down
from srpipe.log import info, warn


def lr_at(step: int, o: OptimConfig) -> float:
    """Constant lr, then linear decay to 0 from `decay_start * iters` (official LambdaLR, per step)."""
    start = int(o.decay_start * o.iters)
    if step < start:
        return o.lr
    return o.lr * max(0.0, (o.iters - step) / max(1, o.iters - start))


def synthesize(G, x, *, speed: Speed, jpeg_q: torch.Tensor | None) -> torch.Tensor:
    """G's LR for bicubic LR `x`, JPEG-compressed at qualities `jpeg_q` (B,) when given (as make-pairs writes it)."""
    fake = speed.run(G, x)
    return fake if jpeg_q is None else diff_jpeg(fake.float(), jpeg_q)


def judge(D, real, fake, L, *, speed: Speed, need_real: bool = True) -> tuple[torch.Tensor | None, torch.Tensor]:
    """D's logits on the high-passes of real and synthetic LR.

    `loss.d_batch = "joint"` runs both kinds as one batch, so batch norm normalises them together;
    "separate" (official) runs two batches, and skips the real one when `need_real` is false.
    """

    def hp(t):
        return losses.d_input(t, kernel=L.kernel, kind=L.filter, gain=L.hp_gain)

    if L.d_batch == "joint":
        logits = speed.run(D, torch.cat([hp(real), hp(fake)]))
        return logits[: len(real)], logits[len(real) :]
    return (speed.run(D, hp(real)) if need_real else None), speed.run(D, hp(fake))


def d_step(
    G, D, opt_d, x, real, cfg: DegradeConfig, *, speed: Speed, guard: StepGuard, jpeg_q: torch.Tensor | None = None
) -> dict[str, torch.Tensor]:
    """One discriminator update: real-LR high-passes -> 1, synthetic high-passes -> 0.

    Networks run under `speed` (bf16 autocast on CUDA); the losses are fp32. A non-finite loss skips
    the update on the device (`guard`), without a host sync.
    """
    L = cfg.loss
    with torch.no_grad():
        fake = synthesize(G, x, speed=speed, jpeg_q=jpeg_q)
    logits_real, logits_fake = judge(D, real, fake, L, speed=speed)
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
    x,
    real,
    perceptual,
    cfg: DegradeConfig,
    *,
    speed: Speed,
    guard: StepGuard,
    jpeg_q: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """One generator update: colour (low-pass L1) + adversarial (high-pass D) + perceptual.

    The adversarial term uses the discriminator *after* this step's update. The official code
    reused the scores D gave before its update; we deviate on purpose, as in standard alternating
    GAN training, so G always trains against the current D. `D` here is the plain module (not DDP):
    its weights are frozen for this step, so there are no gradients of D to synchronise.
    """
    L = cfg.loss
    for p in D.parameters():
        p.requires_grad_(False)
    fake = synthesize(G, x, speed=speed, jpeg_q=jpeg_q)
    out = {"color": losses.color_loss(fake, x, kernel=L.kernel, kind=L.filter)}
    total = L.w_color * out["color"]
    if L.w_adv > 0:
        _, logits_fake = judge(D, real, fake, L, speed=speed, need_real=False)
        out["adv"] = losses.bce_real(logits_fake)
        total = total + L.w_adv * out["adv"]
    if perceptual is not None and L.w_perceptual > 0:
        out["perceptual"] = speed.run(perceptual, fake, x)
        total = total + L.w_perceptual * out["perceptual"]
    opt_g.zero_grad(set_to_none=True)
    guard.backward(total)
    guard.step(opt_g)
    for p in D.parameters():
        p.requires_grad_(True)
    out["g_total"] = total
    return {k: v.detach() for k, v in out.items()}


def _sample_grid(G, hr: torch.Tensor, real: torch.Tensor, scale: int) -> torch.Tensor:
    """Rows of bicubic LR | synthetic LR | real LR crop, as one (3, H, W) image."""
    from torchvision.utils import make_grid

    with torch.no_grad():
        x = bicubic_down(hr, scale)
        fake = G(x)
    rows = torch.stack([x, fake, real], dim=1).flatten(0, 1).float().cpu()
    return make_grid(rows, nrow=3, padding=2, pad_value=1.0)


def train(cfg: DegradeConfig, *, hr_dir, lr_dir, out_dir, run: RunOptions = RunOptions()) -> Path:
    """Train DSGAN; returns the path of `generator.safetensors`. Resumes a run in `out_dir`.

    Under torchrun (WORLD_SIZE > 1) every process runs this with DDP; rank 0 writes the files.
    """
    world, device = distributed.init(run.device)
    try:
        return _train(cfg, hr_dir, lr_dir, out_dir, run, world, device)
    finally:
        world.close()


def _train(cfg: DegradeConfig, hr_dir, lr_dir, out_dir, run: RunOptions, world: distributed.World, device) -> Path:
    D_ = cfg.data
    if not D_.same_domain and lr_dir is None:
        raise SrpipeError("a real-LR folder is required unless data.same_domain is true")
    speed = Speed.resolve(run, device)
    rows = world.shard(cfg.optim.batch, "batch (optim.batch)")
    record = {
        "stage": "degrade-train",
        "config": to_dict(cfg),
        "inputs": {"hr": str(Path(hr_dir).resolve()), "lr": None if D_.same_domain else str(Path(lr_dir).resolve())},
    }
    active = cfg.loss.active()
    info(f"DSGAN x{D_.scale}, {'same-domain' if D_.same_domain else 'unpaired'}; active losses: {', '.join(active)}")

    # Fail early on missing pretrained weights, before reading data or touching the run folder.
    perceptual = None
    if cfg.loss.perceptual != "none" and cfg.loss.w_perceptual > 0:
        perceptual = speed.prepare(losses.Perceptual(cfg.loss.perceptual, run.weights_dir or None))

    hr_set = load_folder(hr_dir, min_size=D_.hr_crop, what="HR", warn=warn)
    if D_.same_domain:
        real_all = hr_set
    else:
        real_all = load_folder(lr_dir, min_size=D_.lr_crop, what="real-LR", warn=warn)
    train_idx, val_idx = split(len(real_all.images), D_.val_fraction, cfg.seed)
    real_set = ImageSet([real_all.images[i] for i in train_idx], [real_all.paths[i] for i in train_idx])
    jpeg_est = estimate_jpeg(hr_dir if D_.same_domain else lr_dir)
    jpeg_pool = jpeg_quality_pool(cfg, jpeg_est)

    out = Path(out_dir)
    if world.main:
        out = open_run(
            out_dir,
            record,
            restart=run.restart,
            identity=run.resume_identity or None,
            clear=("ckpt", "log.csv", "samples", "generator.safetensors", "degradation.json", "jpeg.json"),
        )
        write_json(
            out / "split.json",
            {"train": [p.name for p in real_set.paths], "held_out": [real_all.paths[i].name for i in val_idx]},
        )
    world.barrier()  # the others read checkpoints only after rank 0 has checked (or cleared) the folder

    torch.manual_seed(cfg.seed)
    M = cfg.model
    g_args = {
        "features": M.features,
        "res_blocks": M.res_blocks,
        "noise_channels": M.noise_channels,
        "residual": M.residual,
    }
    d_args = {"features": cfg.model.d_features, "spectral_norm": cfg.model.d_spectral_norm}
    G = DSGANGenerator(**g_args)
    D = DSGANDiscriminator(**d_args)
    if world.size > 1:
        distributed.convert_sync_batchnorm(D)  # batch statistics of the global batch
    G, D = speed.prepare(G), speed.prepare(D)
    optim = cfg.optim
    opt_g = accel.adam(G.parameters(), lr=optim.lr, betas=(optim.beta1, optim.beta2), device=device)
    opt_d = accel.adam(D.parameters(), lr=optim.lr, betas=(optim.beta1, optim.beta2), device=device)
    gen = torch.Generator().manual_seed(cfg.seed + 1)  # data stream: crops, flips, rotations (global batch)

    state = Checkpoint(
        out / "ckpt",
        {"generator": (G, "DSGANGenerator", g_args), "discriminator": (D, "DSGANDiscriminator", d_args)},
        {"opt_g": opt_g, "opt_d": opt_d},
        gen,
        keep=run.keep_ckpts,
    )
    start = resume(state, str(out), optim.iters)

    # Fixed crops for sample grids, so grids from different steps compare like with like.
    sample_gen = torch.Generator().manual_seed(12345)
    n_samples = min(4, optim.batch)
    sample_hr = random_crops(hr_set.images, n_samples, D_.hr_crop, sample_gen).to(device)
    sample_real = random_crops(real_set.images, n_samples, D_.lr_crop, sample_gen).to(device)

    def write_samples(step: int) -> None:
        from srpipe.io.imageio import write_png

        if world.main:
            G.eval()
            grid = _sample_grid(G, sample_hr, sample_real, D_.scale)
            write_png(out / "samples" / f"step_{step:08d}.png", grid)
            if log is not None:
                log.image("samples", step, grid)
            G.train()

    # uint8 images for batched device-side crops (srpipe.engine.augment), on the GPU when they fit.
    hr_bank = ImageBank([im.permute(1, 2, 0) for im in hr_set.images], device=device, placement=run.data_placement)
    real_bank = ImageBank([im.permute(1, 2, 0) for im in real_set.images], device=device, placement=run.data_placement)
    # DDP (several processes) and torch.compile wrap the networks for the steps; saving uses G and D.
    G_train, D_train = speed.compiled(world.wrap(G)), speed.compiled(world.wrap(D))
    D_frozen = D_train if world.size == 1 else speed.compiled(D)
    info(
        f"on {device}{f' x{world.size} processes' if world.size > 1 else ''}: {speed.describe()}; "
        f"images in {hr_bank.placement} memory"
    )

    def train_step(step: int, guard: StepGuard) -> tuple[float, dict[str, torch.Tensor]]:
        lr = lr_at(step - 1, optim)
        for opt, scale in ((opt_g, 1.0), (opt_d, optim.d_lr_scale)):
            for group in opt.param_groups:
                group["lr"] = lr * scale
        # Every rank draws the global batch (same stream) and gathers its own rows on the device.
        d_hr = augment.draw(
            gen, hr_bank.sizes, optim.batch, D_.hr_crop, multiple=D_.scale, flips=D_.flips, rotations=D_.rotations
        ).slice(rows.start, rows.stop)
        d_real = augment.draw(
            gen, real_bank.sizes, optim.batch, D_.lr_crop, flips=D_.flips, rotations=D_.rotations
        ).slice(rows.start, rows.stop)
        hr = augment.to_float(hr_bank.crops(d_hr, D_.hr_crop, channels_last=speed.channels_last))
        real = augment.to_float(real_bank.crops(d_real, D_.lr_crop, channels_last=speed.channels_last))
        x = bicubic_down(hr, D_.scale)
        jpeg_q = None
        if jpeg_pool is not None:  # per-step seed: the same draws after a resume, no state to save
            q_gen = torch.Generator().manual_seed(cfg.seed * 1_000_003 + step)
            picks = torch.randint(len(jpeg_pool), (optim.batch,), generator=q_gen)[rows.start : rows.stop]
            jpeg_q = jpeg_pool[picks].to(device)
        d_losses = d_step(G, D_train, opt_d, x, real, cfg, speed=speed, guard=guard, jpeg_q=jpeg_q)
        g_losses = g_step(G_train, D_frozen, opt_g, x, real, perceptual, cfg, speed=speed, guard=guard, jpeg_q=jpeg_q)
        return lr, {**d_losses, **g_losses}

    def after_step(step: int) -> None:
        if run.sample_every and step % run.sample_every == 0:
            write_samples(step)

    log = (
        RunLog(
            out,
            "log.csv",
            ["lr", "d_real", "d_fake", "color", "adv", "perceptual", "g_total", "skipped"],
            resume_step=start,
            mode=run.log,
            config=record,
        )
        if world.main
        else None
    )
    phase = PhaseInfo("degrade-train", shown={k: k for k in ("d_real", "d_fake", "color", "g_total")})
    t0 = time.time()
    run_steps(
        train_step,
        phase=phase,
        iters=optim.iters,
        start=start,
        state=state,
        world=world,
        device=device,
        run=run,
        log=log,
        guarded=[D],
        after_step=after_step,
    )
    write_samples(optim.iters)
    G.eval()
    if world.main:
        meta = {
            "stage": "degrade-train",
            "scale": D_.scale,
            "config": to_dict(cfg),
            "active_losses": active,
            "jpeg": jpeg_est.to_json(),
        }
        write_json(out / "jpeg.json", jpeg_est.to_json())
        ckpt.save_weights(out / "generator.safetensors", G.state_dict(), arch="DSGANGenerator", args=g_args, meta=meta)
        info(f"trained {optim.iters - start} steps in {time.time() - t0:.1f} s")
        if val_idx and not D_.same_domain:
            held_out = [real_all.images[i].float().div(255) for i in val_idx]
            realism_check(G, hr_set, held_out, D_.scale, out, run, device)
    return out / "generator.safetensors"


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
    write_json(out / "degradation.json", report)
    closer = [f"{r['metric']}: {r['closer']}" for r in report["rows"] if r.get("closer")]
    info(f"realism vs {len(held_out)} held-out real LR image(s), closer to real: " + ", ".join(closer))
    for note in report.get("notes", []):
        info(f"note: {note}")
    return report
