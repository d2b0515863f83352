"""`sr-train`: ESRGAN training, PSNR phase then GAN phase, all of it in this file.

- PSNR phase: L1 only, Adam, lr halved at the milestones; the "RRDB_PSNR" model.
- GAN phase, initialised from the PSNR model (or `--init`): pixel + VGG19 perceptual + RaGAN, with
  G and D updated alternately (G first, then D on the same generator output, as BasicSR's
  `ESRGANModel.optimize_parameters`). With `fs.enabled` (ESRGAN-FS) the pixel loss compares
  low-passes and D sees high-passes only.
- An EMA of G (BasicSR `model_ema`, decay 0.999) is validated and saved as the model weights.

Run folder: config.json, split.json, ckpt/{psnr,gan}/, log_psnr.csv, log_gan.csv, tb/{psnr,gan}/, samples/,
best.json, psnr.safetensors, gan.safetensors (EMA weights; `.pth` copies with `export_pth`).
A phase whose weights file exists and whose checkpoint reached its last step is not rerun.
"""

from __future__ import annotations

import copy
import json
import time
from pathlib import Path
from typing import Literal

import torch

from srpipe.engine import accel, ckpt, distributed, weights
from srpipe.eval import metrics
from srpipe.engine.accel import Speed, StepGuard
from srpipe.engine.augment import split
from srpipe.config import RunOptions, to_dict
from srpipe.engine.distributed import global_mean
from srpipe.errors import SrpipeError
from srpipe.io.imageio import file_sha256
from srpipe.log import info, warn
from srpipe.engine.loop import Checkpoint, PhaseInfo, ckpt_interval, resume, run_steps
from srpipe.io.resize import bicubic_up
from srpipe.engine.runlog import RunLog, open_run, write_json
from srpipe.upscale import interop, losses
from srpipe.upscale.archs import DISCRIMINATORS, RRDBNet, unshuffle_factor
from srpipe.upscale.config import UpscaleConfig
from srpipe.upscale.data import Pair, PairBank, center_pair, load_pairs

Phase = Literal["psnr", "gan", "both"]
VAL_MAX_HR = 512  # validation uses a centre crop of at most this many HR pixels per side (bounded time)
SAMPLE_MAX_LR = 48  # sample grids show at most this many LR pixels per side of each held-out image


def lr_at(step: int, base: float, milestones: tuple[int, ...], gamma: float) -> float:
    """Step schedule (MultiStepLR): `base * gamma**k`, k = milestones already passed before `step`."""
    return base * gamma ** sum(1 for m in milestones if step > m)


@torch.no_grad()
def ema_update(ema: torch.nn.Module, net: torch.nn.Module, decay: float) -> None:
    """ema = decay * ema + (1 - decay) * net (BasicSR `model_ema`); buffers are copied.

    One fused lerp over all parameters (as torch.optim.swa_utils does): RRDBNet has ~700 tensors,
    and a per-tensor loop would be ~1400 kernel launches per step.
    """
    torch._foreach_lerp_(list(ema.parameters()), list(net.parameters()), 1 - decay)
    for e, b in zip(ema.buffers(), net.buffers()):
        e.copy_(b)


def g_step(
    G, D, opt_g, lq, gt, cfg: UpscaleConfig, *, perceptual=None, fs=None, speed: Speed, guard: StepGuard
) -> tuple[dict, torch.Tensor]:
    """One generator update; returns (losses, the detached SR batch for `d_step`).

    PSNR phase (`D is None`): L1. GAN phase: w_pixel * L1 (of low-passes with FS)
    + w_perceptual * VGG19 conv5_4 L1 + w_adv * RaGAN, with D frozen for this step (the plain
    module, not DDP: no D gradients to synchronise). Networks run under `speed` (bf16 autocast on
    CUDA), losses in fp32; a non-finite loss skips the update on the device (`guard`).
    """
    sr = speed.run(G, lq)
    out: dict[str, torch.Tensor] = {}
    if D is None:
        total = out["l_pix"] = losses.pixel_loss(sr, gt)
    else:
        c = cfg.gan
        for p in D.parameters():
            p.requires_grad_(False)
        if fs is not None:
            out["l_pix"] = losses.pixel_loss(fs.low(sr), fs.low(gt))
            out["l_pix_full"] = losses.pixel_loss(sr.detach(), gt)  # logged, not optimised (ESRGAN-FS l_g_pix_nf)
        else:
            out["l_pix"] = losses.pixel_loss(sr, gt)
        total = c.w_pixel * out["l_pix"]
        if perceptual is not None:
            out["l_percep"] = speed.run(perceptual, sr, gt)
            total = total + c.w_perceptual * out["l_percep"]
        if c.w_adv > 0:
            d_in = fs.high if fs is not None else (lambda x: x)
            real_logits = speed.run(D, d_in(gt)).detach()
            # the relativistic average runs over the global batch under DDP (distributed.global_mean)
            out["l_adv"] = losses.ragan_g_loss(real_logits, speed.run(D, d_in(sr)), mean=global_mean)
            total = total + c.w_adv * out["l_adv"]
    opt_g.zero_grad(set_to_none=True)
    guard.backward(total)
    guard.step(opt_g)
    if D is not None:
        for p in D.parameters():
            p.requires_grad_(True)
    out["g_total"] = total
    return {k: v.detach() for k, v in out.items()}, sr.detach()


def d_step(D, opt_d, sr, gt, *, fs=None, speed: Speed, guard: StepGuard) -> dict:
    """One discriminator update with the RaGAN loss on (GT, SR); `sr` is already detached."""
    d_in = fs.high if fs is not None else (lambda x: x)
    real_logits = speed.run(D, d_in(gt))
    fake_logits = speed.run(D, d_in(sr))
    loss = losses.ragan_d_loss(real_logits, fake_logits, mean=global_mean)
    opt_d.zero_grad(set_to_none=True)
    guard.backward(loss)
    guard.step(opt_d)
    return {"d_loss": loss.detach(), "d_real": real_logits.detach().mean(), "d_fake": fake_logits.detach().mean()}


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


def _sample_grid(G, crops: list[tuple[torch.Tensor, torch.Tensor]], scale: int, device) -> torch.Tensor:
    """Rows of bicubic | SR | HR for a few held-out crops, as one (3, H, W) image."""
    from torchvision.utils import make_grid

    tiles = []
    with torch.no_grad():
        for lq, gt in crops:
            sr = G(lq.to(device)).clamp(0, 1).float().cpu()
            tiles += [bicubic_up(lq, scale)[0] if scale > 1 else lq[0], sr[0], gt[0]]
    return make_grid(tiles, nrow=3, padding=2, pad_value=1.0)


def _file_record(path: str | Path | None) -> dict | None:
    if path is None:
        return None
    p = interop.resolve_model(path)
    if not p.is_file():
        raise SrpipeError(f"--init {p} does not exist")
    return {"path": str(p.resolve()), "sha256": file_sha256(p)}


def _load_init(path, g_args: dict, what: str) -> dict:
    net, args, _ = interop.load_generator(path)
    if args != g_args:
        diff = ", ".join(f"{k} {args.get(k)} (config: {g_args.get(k)})" for k in g_args if args.get(k) != g_args.get(k))
        raise SrpipeError(f"{what} {path} is another network ({diff}); set the model.* config to match it")
    return net.state_dict()


def train(
    cfg: UpscaleConfig,
    *,
    pairs,
    out_dir,
    run: RunOptions = RunOptions(),
    phase: Phase = "both",
    init=None,
    val_every: int = 0,
    export_pth: bool = False,
    cache_dir=None,
) -> dict[str, Path]:
    """Train ESRGAN on `pairs` (hr/ + lr/); returns {"psnr": path, "gan": path} of the weights written.

    Args:
        phase: ``psnr``, ``gan`` (needs OUT/psnr.safetensors or `init`) or ``both``.
        init: weights to start from (any ESRGAN layout): the PSNR phase with ``psnr``/``both``, the
            GAN phase with ``gan`` (e.g. fine-tuning a published model, as FSSR did).
        val_every: steps between validations and sample grids (0: with every checkpoint).
        export_pth: also write BasicSR-style `.pth` copies of the weights.

    Under torchrun (WORLD_SIZE > 1) every process runs this with DDP; rank 0 writes the files.
    """
    if phase not in ("psnr", "gan", "both"):
        raise SrpipeError(f"phase must be psnr, gan or both, got {phase!r}")
    world, device = distributed.init(run.device)
    try:
        return _train(cfg, pairs, out_dir, run, phase, init, val_every, export_pth, cache_dir, world, device)
    finally:
        world.close()


def _train(
    cfg: UpscaleConfig,
    pairs,
    out_dir,
    run: RunOptions,
    phase: Phase,
    init,
    val_every: int,
    export_pth: bool,
    cache_dir,
    world: distributed.World,
    device,
) -> dict[str, Path]:
    speed = Speed.resolve(run, device)
    rows = world.shard(cfg.batch)
    S = cfg.data.scale
    g_args = cfg.generator_args()
    if export_pth and S == 3:
        raise SrpipeError(
            "--export-pth: x3 RRDBNets are srpipe-only (BasicSR and spandrel cannot read them); "
            "drop --export-pth or train at x2/x4"
        )
    record = {
        "stage": "sr-train",
        "config": to_dict(cfg),
        "inputs": {"pairs": str(Path(pairs).resolve()), "init": _file_record(init)},
    }
    phases = ["psnr", "gan"] if phase == "both" else [phase]
    fs = losses.FrequencySeparation(cfg.fs.filter, cfg.fs.kernel) if cfg.fs.enabled else None
    parts = [f"L1 x{cfg.gan.w_pixel:g}" + (f" on {cfg.fs.filter} k={cfg.fs.kernel} low-passes" if fs else "")]
    if cfg.gan.perceptual != "none" and cfg.gan.w_perceptual > 0:
        parts.append(f"VGG19 conv5_4 x{cfg.gan.w_perceptual:g}")
    if cfg.gan.w_adv > 0:
        parts.append(f"RaGAN ({cfg.model.discriminator} D{', high-pass input' if fs else ''}) x{cfg.gan.w_adv:g}")
    info(
        f"ESRGAN x{S}: RRDBNet {cfg.model.num_feat} features, {cfg.model.num_block} blocks; phases: "
        f"{' -> '.join(phases)}; PSNR phase L1; GAN phase {' + '.join(parts)}"
    )

    # Fail early on missing pretrained weights, before reading data or touching the run folder.
    perceptual = lpips = None
    if "gan" in phases and cfg.gan.perceptual == "vgg19" and cfg.gan.w_perceptual > 0:
        perceptual = speed.prepare(losses.PerceptualLoss(weights.vgg19_features(run.weights_dir or None)))
    if "gan" in phases and weights.find("alexnet", run.weights_dir or None) is not None:  # GAN validation only
        lpips = metrics.LPIPS(weights_dir=run.weights_dir or None).to(device)

    all_pairs = load_pairs(pairs, S, min_lr=cfg.data.lr_patch, cache_dir=cache_dir, warn=warn)
    train_idx, val_idx = split(len(all_pairs), cfg.data.val_fraction, cfg.seed)
    train_pairs: list[Pair] = [all_pairs[i] for i in train_idx]
    unit = unshuffle_factor(S)  # x2/x1 inputs must divide by the pixel-unshuffle factor
    val = [center_pair(all_pairs[i], S, max_lr=VAL_MAX_HR // S, multiple=unit) for i in val_idx]
    sample_src = [all_pairs[i] for i in val_idx[:3]] or train_pairs[:2]
    samples = [center_pair(p, S, max_lr=SAMPLE_MAX_LR, multiple=unit) for p in sample_src]

    out = Path(out_dir)
    if world.main:
        out = open_run(
            out_dir,
            record,
            restart=run.restart,
            identity=run.resume_identity or None,
            clear=(
                "ckpt",
                "log_psnr.csv",
                "log_gan.csv",
                "samples",
                "best.json",
                "psnr.safetensors",
                "gan.safetensors",
                "psnr.pth",
                "gan.pth",
            ),
        )
        write_json(
            out / "split.json",
            {"train": [p.name for p in train_pairs], "held_out": [all_pairs[i].name for i in val_idx]},
        )
    world.barrier()  # the others read checkpoints only after rank 0 has checked (or cleared) the folder
    # uint8 pairs for batched device-side crops (srpipe.engine.augment), on the GPU when they fit.
    bank = PairBank(train_pairs, S, device=device, placement=run.data_placement)
    info(
        f"on {device}{f' x{world.size} processes' if world.size > 1 else ''}: {speed.describe()}; "
        f"pairs in {bank.lr.placement} memory"
    )
    if val:
        bic = [(bicubic_up(lq, S) if S > 1 else lq, gt) for lq, gt in val]
        b_psnr = sum(float(metrics.psnr(b, h, crop_border=S)[0]) for b, h in bic) / len(bic)
        info(f"{len(train_pairs)} training pairs, {len(val)} held out (bicubic on them: PSNR-Y {b_psnr:.2f} dB)")
    else:
        info(f"{len(train_pairs)} training pairs, none held out (data.val_fraction = 0): no validation")
    best = json.loads((out / "best.json").read_text()) if (out / "best.json").is_file() else {}
    results: dict[str, Path] = {}

    for phase_i, name in enumerate(phases):
        P = cfg.psnr if name == "psnr" else cfg.gan
        final = out / f"{name}.safetensors"
        ck_dir = out / "ckpt" / name
        last = ckpt.latest_checkpoint(ck_dir)
        if P.iters == 0:
            info(f"{name} phase: 0 steps configured, skipped")
            continue
        if last is not None and final.is_file() and int(ckpt.load_state(last / "state.pt")["step"]) >= P.iters:
            info(f"{name} phase already complete: {final}")
            results[name] = final
            continue

        # ---- networks, optimisers, data stream
        torch.manual_seed(cfg.seed + phase_i)
        G = RRDBNet(**g_args)
        if name == "psnr" and init is not None:
            G.load_state_dict(_load_init(init, g_args, "--init"))
        elif name == "gan":
            if (out / "psnr.safetensors").is_file() and not (phase == "gan" and init is not None):
                G.load_state_dict(_load_init(out / "psnr.safetensors", g_args, "PSNR model"))
            elif init is not None:
                G.load_state_dict(_load_init(init, g_args, "--init"))
            else:
                raise SrpipeError(
                    f"the GAN phase starts from the PSNR model, but {out / 'psnr.safetensors'} does not "
                    "exist: run --phase psnr (or both) first, or pass --init FILE"
                )
        G = speed.prepare(G)
        ema = copy.deepcopy(G).eval()
        for p in ema.parameters():
            p.requires_grad_(False)
        D = opt_d = None
        lr_base = P.lr if name == "psnr" else P.lr_g
        opt_g = accel.adam(G.parameters(), lr=lr_base, betas=P.betas, device=device)
        if name == "gan":
            D = DISCRIMINATORS[cfg.model.discriminator](**cfg.discriminator_args())
            if world.size > 1:
                distributed.convert_sync_batchnorm(D)  # batch statistics of the global batch
            D = speed.prepare(D)
            opt_d = accel.adam(D.parameters(), lr=P.lr_d, betas=P.betas, device=device)
        gen = torch.Generator().manual_seed(cfg.seed + 1 + phase_i)  # crops, flips, rotations (global batch)

        nets = {"generator": (G, "RRDBNet", g_args), "ema": (ema, "RRDBNet", g_args)}
        optimizers = {"opt_g": opt_g}
        if D is not None:
            nets["discriminator"] = (D, type(D).__name__, cfg.discriminator_args())
            optimizers["opt_d"] = opt_d
        state = Checkpoint(ck_dir, nets, optimizers, gen, keep=run.keep_ckpts)
        start = resume(state, f"the {name} phase in {out}", P.iters)

        last_val: dict[str, float] = {}

        def evaluate(step: int) -> dict[str, float]:
            from srpipe.io.imageio import write_png

            if not world.main:
                return {}
            if samples:
                grid = _sample_grid(ema, samples, S, device)
                write_png(out / "samples" / f"{name}_{step:08d}.png", grid)
                if log is not None:
                    log.image("samples", step, grid)
            if not val:
                return {}
            v = validate(ema, val, S, device, lpips if name == "gan" else None)
            key = "val_lpips" if "val_lpips" in v else "val_psnr_y"  # LPIPS: lower is better; PSNR: higher
            prev = best.get(name)
            if (
                prev is None
                or prev.get("metric") != key
                or (v[key] < prev["value"] if key == "val_lpips" else v[key] > prev["value"])
            ):
                best[name] = {"step": step, "metric": key, "value": v[key], **v}
                write_json(out / "best.json", best)
            last_val.clear()
            last_val.update(v)
            return v

        # ---- the loop
        every_val = val_every or ckpt_interval(run, P.iters)
        fields = ["lr", "l_pix", "g_total", "val_psnr_y", "val_ssim_y", "val_lpips"]
        if name == "gan":
            fields[2:2] = ["l_pix_full", "l_percep", "l_adv", "d_loss", "d_real", "d_fake"]
        fields.append("skipped")
        log = (
            RunLog(out, f"log_{name}.csv", fields, resume_step=start, mode=run.log, events=name, config=record)
            if world.main
            else None
        )
        # DDP (several processes) and torch.compile wrap the networks for the steps; saving uses G and D.
        G_train = speed.compiled(world.wrap(G))
        D_train = None if D is None else speed.compiled(world.wrap(D))
        D_frozen = D_train if world.size == 1 else None if D is None else speed.compiled(D)

        def train_step(step: int, guard: StepGuard) -> tuple[float, dict[str, torch.Tensor]]:
            lr_now = lr_at(step, lr_base, P.milestones, P.gamma)
            for group in opt_g.param_groups:
                group["lr"] = lr_now
            if opt_d is not None:
                for group in opt_d.param_groups:
                    group["lr"] = lr_at(step, P.lr_d, P.milestones, P.gamma)
            # Every rank draws the global batch (same stream) and gathers its own rows on the device.
            draws = bank.draw(
                gen, cfg.batch, cfg.data.lr_patch, flips=cfg.data.flips, rotations=cfg.data.rotations
            ).slice(rows.start, rows.stop)
            lq, gt = bank.batch(draws, cfg.data.lr_patch, channels_last=speed.channels_last)
            step_losses, sr = g_step(
                G_train, D_frozen, opt_g, lq, gt, cfg, perceptual=perceptual, fs=fs, speed=speed, guard=guard
            )
            if D is not None:
                step_losses.update(d_step(D_train, opt_d, sr, gt, fs=fs, speed=speed, guard=guard))
            ema_update(ema, G, cfg.ema_decay)
            return lr_now, step_losses

        def after_step(step: int) -> dict[str, float] | None:
            return evaluate(step) if step % every_val == 0 else None

        shown = {k: k for k in ("l_pix", "l_adv", "d_loss", "l_percep")} | {"val_psnr_y": "val PSNR-Y"}
        lr_keys = "psnr.lr" if name == "psnr" else "gan.lr_g / gan.lr_d"
        t0 = time.time()
        G.train()
        run_steps(
            train_step,
            phase=PhaseInfo(f"sr-train {name}", shown, name=name, lr_keys=lr_keys, inputs="the training pairs"),
            iters=P.iters,
            start=start,
            state=state,
            world=world,
            device=device,
            run=run,
            log=log,
            guarded=[D] if D is not None else [],
            after_step=after_step,
        )
        v = last_val if last_val and P.iters % every_val == 0 else evaluate(P.iters)
        results[name] = final
        if world.main:
            meta = {
                "stage": "sr-train",
                "phase": name,
                "scale": S,
                "steps": P.iters,
                "ema_decay": cfg.ema_decay,
                "config": to_dict(cfg),
                "validation": {k: v[k] for k in v if k.startswith("val_")},
            }
            results[name] = interop.save_generator(final, ema.state_dict(), g_args, meta=meta)
            if export_pth:
                interop.export_pth(out / f"{name}.pth", ema.state_dict(), g_args)
            msg = f"{name} phase: {P.iters - start} steps in {time.time() - t0:.1f} s -> {final}"
            if "val_psnr_y" in v:
                msg += f" (held-out PSNR-Y {v['val_psnr_y']:.2f} dB, SSIM-Y {v['val_ssim_y']:.4f})"
            info(msg)
        world.barrier()  # the GAN phase of every rank starts from the PSNR weights rank 0 just wrote
    return results
