"""`degrade-train`: the DSGAN training loop, all of it in this file.

Truly unpaired (the official code drew both domains from one folder, real-world-sr #2/#9/#11):
the generator input is the bicubic downscale of a random clean-HR crop, the discriminator's real
samples are random crops of the real-LR folder (or, with `data.same_domain`, native-resolution
crops of the HR folder as in the official code).

Run folder: config.json, ckpt/, log.csv, samples/, generator.safetensors (last), split.json,
degradation.json (realism table on the held-out real LR, when srpipe.realism is available).
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import torch

from srpipe import ckpt
from srpipe.cli.console import info, warn
from srpipe.config import RunOptions, resolve_device, to_dict
from srpipe.degrade import losses
from srpipe.degrade.archs import DSGANDiscriminator, DSGANGenerator
from srpipe.degrade.config import DegradeConfig, OptimConfig
from srpipe.degrade.data import ImageSet, load_folder, random_crops, split
from srpipe.errors import SrpipeError
from srpipe.resize import bicubic_down
from srpipe.runlog import CsvLog, Interrupted, Progress, StopFlag, open_run, write_json


def lr_at(step: int, o: OptimConfig) -> float:
    """Constant lr, then linear decay to 0 from `decay_start * iters` (official LambdaLR, per step)."""
    start = int(o.decay_start * o.iters)
    if step < start:
        return o.lr
    return o.lr * max(0.0, (o.iters - step) / max(1, o.iters - start))


def d_step(G, D, opt_d, x, real, cfg: DegradeConfig) -> dict[str, torch.Tensor]:
    """One discriminator update: real-LR high-passes -> 1, synthetic high-passes -> 0."""
    k, kind = cfg.loss.kernel, cfg.loss.filter
    with torch.no_grad():
        fake = G(x)
    loss_real = losses.bce_real(D(losses.d_input(real, kernel=k, kind=kind)))
    loss_fake = losses.bce_fake(D(losses.d_input(fake, kernel=k, kind=kind)))
    loss = loss_real + loss_fake
    opt_d.zero_grad(set_to_none=True)
    if torch.isfinite(loss):  # a non-finite loss skips the update instead of poisoning the weights
        loss.backward()
        opt_d.step()
    return {"d_real": loss_real.detach(), "d_fake": loss_fake.detach()}


def g_step(G, D, opt_g, x, perceptual, cfg: DegradeConfig) -> dict[str, torch.Tensor]:
    """One generator update: colour (low-pass L1) + adversarial (high-pass D) + perceptual.

    The adversarial term uses the discriminator *after* this step's update. The official code
    reused the scores D gave before its update; we deviate on purpose, as in standard alternating
    GAN training, so G always trains against the current D.
    """
    L = cfg.loss
    for p in D.parameters():
        p.requires_grad_(False)
    fake = G(x)
    out = {"color": losses.color_loss(fake, x, kernel=L.kernel, kind=L.filter)}
    total = L.w_color * out["color"]
    if L.w_adv > 0:
        out["adv"] = losses.bce_real(D(losses.d_input(fake, kernel=L.kernel, kind=L.filter)))
        total = total + L.w_adv * out["adv"]
    if perceptual is not None and L.w_perceptual > 0:
        out["perceptual"] = perceptual(fake, x)
        total = total + L.w_perceptual * out["perceptual"]
    opt_g.zero_grad(set_to_none=True)
    if torch.isfinite(total):
        total.backward()
        opt_g.step()
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
    """Train DSGAN; returns the path of `generator.safetensors`. Resumes a run in `out_dir`."""
    device = resolve_device(run.device)
    D_ = cfg.data
    if not D_.same_domain and lr_dir is None:
        raise SrpipeError("a real-LR folder is required unless data.same_domain is true")
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
        perceptual = losses.Perceptual(cfg.loss.perceptual, run.weights_dir or None).to(device)

    hr_set = load_folder(hr_dir, min_size=D_.hr_crop, what="HR", warn=warn)
    if D_.same_domain:
        real_all = hr_set
    else:
        real_all = load_folder(lr_dir, min_size=D_.lr_crop, what="real-LR", warn=warn)
    train_idx, val_idx = split(len(real_all.images), D_.val_fraction, cfg.seed)
    real_set = ImageSet([real_all.images[i] for i in train_idx], [real_all.paths[i] for i in train_idx])

    out = open_run(out_dir, record, restart=run.restart, clear=("ckpt", "log.csv", "samples", "generator.safetensors", "degradation.json"))
    write_json(out / "split.json", {"train": [p.name for p in real_set.paths],
                                    "held_out": [real_all.paths[i].name for i in val_idx]})

    torch.manual_seed(cfg.seed)
    g_args = {"features": cfg.model.features, "res_blocks": cfg.model.res_blocks}
    d_args = {"features": cfg.model.d_features}
    G = DSGANGenerator(**g_args).to(device)
    D = DSGANDiscriminator(**d_args).to(device)
    O = cfg.optim
    opt_g = torch.optim.Adam(G.parameters(), lr=O.lr, betas=(O.beta1, O.beta2))
    opt_d = torch.optim.Adam(D.parameters(), lr=O.lr, betas=(O.beta1, O.beta2))
    gen = torch.Generator().manual_seed(cfg.seed + 1)  # data stream: crops, flips, rotations

    start = 0
    last = ckpt.latest_checkpoint(out / "ckpt")
    if last is not None:
        nets, state = ckpt.load_checkpoint(last)
        G.load_state_dict(nets["generator"])
        D.load_state_dict(nets["discriminator"])
        opt_g.load_state_dict(state["opt_g"])
        opt_d.load_state_dict(state["opt_d"])
        gen.set_state(state["data_rng"])
        ckpt.set_rng_state(state["rng"])
        start = int(state["step"])
        info(f"resuming {out} at step {start}/{O.iters}")

    def save(step: int) -> None:
        ckpt.save_checkpoint(
            out / "ckpt", step,
            {"generator": (G.state_dict(), "DSGANGenerator", g_args),
             "discriminator": (D.state_dict(), "DSGANDiscriminator", d_args)},
            {"opt_g": opt_g.state_dict(), "opt_d": opt_d.state_dict(), "data_rng": gen.get_state(),
             "rng": ckpt.rng_state()},
            keep=run.keep_ckpts,
        )

    # Fixed crops for sample grids, so grids from different steps compare like with like.
    sample_gen = torch.Generator().manual_seed(12345)
    n_samples = min(4, O.batch)
    sample_hr = random_crops(hr_set.images, n_samples, D_.hr_crop, sample_gen).to(device)
    sample_real = random_crops(real_set.images, n_samples, D_.lr_crop, sample_gen).to(device)

    def write_samples(step: int) -> None:
        from srpipe.imageio import write_png

        G.eval()
        write_png(out / "samples" / f"step_{step:08d}.png", _sample_grid(G, sample_hr, sample_real, D_.scale))
        G.train()

    ckpt_every = run.ckpt_every or max(50, min(5000, O.iters // 10))
    log = CsvLog(out / "log.csv", ["lr", "d_real", "d_fake", "color", "adv", "perceptual", "g_total"], resume_step=start)
    t0 = time.time()
    step = start
    try:
        with StopFlag() as stop, Progress(O.iters, start, "degrade-train") as bar:
            for step in range(start + 1, O.iters + 1):
                lr = lr_at(step - 1, O)
                for opt in (opt_g, opt_d):
                    for group in opt.param_groups:
                        group["lr"] = lr
                hr = random_crops(hr_set.images, O.batch, D_.hr_crop, gen, flips=D_.flips, rotations=D_.rotations,
                                  multiple=D_.scale).to(device, non_blocking=True)
                real = random_crops(real_set.images, O.batch, D_.lr_crop, gen, flips=D_.flips,
                                    rotations=D_.rotations).to(device, non_blocking=True)
                x = bicubic_down(hr, D_.scale)

                d_losses = d_step(G, D, opt_d, x, real, cfg)
                g_losses = g_step(G, D, opt_g, x, perceptual, cfg)

                if step % run.log_every == 0 or step == O.iters or step == start + 1:
                    values = {k: float(v) for k, v in {**d_losses, **g_losses}.items()}  # one host sync
                    if not all(math.isfinite(v) for v in values.values()):
                        warn(f"step {step}: non-finite loss {values}; that update was skipped")
                    log.write(step, {"lr": lr, **values})
                    bar.update(step, {k: values[k] for k in ("d_real", "d_fake", "color", "g_total")})
                else:
                    bar.update(step)
                if run.sample_every and step % run.sample_every == 0:
                    write_samples(step)
                stopping = bool(stop)  # read once: a signal landing between two reads must not skip the save
                if step % ckpt_every == 0 or stopping:
                    save(step)
                if stopping:
                    raise Interrupted(f"stopped by signal at step {step}; checkpoint saved in {out / 'ckpt'}; "
                                      f"rerun the same command to resume")
    finally:
        log.close()
    if start < O.iters and O.iters % ckpt_every:
        save(O.iters)
    write_samples(O.iters)
    G.eval()
    meta = {"stage": "degrade-train", "scale": D_.scale, "config": to_dict(cfg), "active_losses": active}
    ckpt.save_weights(out / "generator.safetensors", G.state_dict(), arch="DSGANGenerator", args=g_args, meta=meta)
    info(f"trained {O.iters - start} steps in {time.time() - t0:.1f} s")
    if val_idx and not D_.same_domain:
        held_out = [real_all.images[i].float().div(255) for i in val_idx]
        realism_check(G, hr_set, held_out, D_.scale, out, run, device)
    return out / "generator.safetensors"


MAX_REALISM_IMAGES = 16  # HR images degraded for the end-of-run realism table (bounded time)


@torch.no_grad()
def realism_check(G, hr_set: ImageSet, held_out: list[torch.Tensor], scale: int, out: Path, run: RunOptions, device) -> dict:
    """Issue 4: compare the held-out real LR with G's LR and with bicubic LR of the same HR images.

    Writes `degradation.json` next to the generator and prints whether G got closer than bicubic.
    """
    from srpipe.degrade.pairs import degrade_image
    from srpipe.realism import degradation_report
    from srpipe.resize import mod_crop

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
