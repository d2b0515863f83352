"""`sr-train`: ESRGAN training, PSNR phase then GAN phase, all of it in this file.

- PSNR phase: L1 only, Adam, lr halved at the milestones; the "RRDB_PSNR" model.
- GAN phase, initialised from the PSNR model (or `--init`): pixel + VGG19 perceptual + RaGAN, with
  G and D updated alternately (G first, then D on the same generator output, as BasicSR's
  `ESRGANModel.optimize_parameters`). With `fs.enabled` (ESRGAN-FS) the pixel loss compares
  low-passes and D sees high-passes only.
- An EMA of G (BasicSR `model_ema`, decay 0.999) is validated and saved as the model weights.

Read in order: `g_step` and `d_step` (one update each), `train` (the set-up both phases share),
`train_phase` (one phase: networks, optimisers, the loop, the weights file); the helpers follow.
Validation, sample grids and best.json are in `srpipe.upscale.validation`; what each phase uses and
writes (losses, pretrained files, file names) is in `srpipe.upscale.contract`.

Run folder: config.json, split.json, ckpt/{psnr,gan}/, log_psnr.csv, log_gan.csv, tb/{psnr,gan}/, samples/,
best.json, psnr.safetensors, gan.safetensors (EMA weights; `.pth` copies with `export_pth`).
A phase whose weights file exists and whose checkpoint reached its last step is not rerun.
"""

from __future__ import annotations

import copy
import json
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Literal

import torch
from torch import nn

from srpipe.config import RunOptions, to_dict
from srpipe.engine import weights
from srpipe.engine.accel import ComputeSettings, StepGuard
from srpipe.engine.distributed import global_mean
from srpipe.engine.loop import Checkpoint, PhaseInfo, ckpt_interval, resume
from srpipe.engine.training import StepNets, TrainingRun, every, set_lr, training_run
from srpipe.errors import SrpipeError
from srpipe.eval import metrics
from srpipe.io.files import file_sha256
from srpipe.log import info
from srpipe.upscale import contract, interop, losses
from srpipe.upscale.archs import DISCRIMINATORS, RRDBNet
from srpipe.upscale.config import DataConfig, GanConfig, PsnrConfig, UpscaleConfig
from srpipe.upscale.data import PairBank
from srpipe.upscale.validation import HeldOut, describe_split, evaluate, split_pairs

Phase = Literal["psnr", "gan", "both"]


def g_step(
    G, D, opt_g, lq, gt, cfg: UpscaleConfig, *, perceptual=None, fs=None, compute: ComputeSettings, guard: StepGuard
) -> tuple[dict, torch.Tensor]:
    """One generator update; returns (losses, the detached SR batch for `d_step`).

    PSNR phase (`D is None`): L1. GAN phase: w_pixel * L1 (of low-passes with FS)
    + w_perceptual * VGG19 conv5_4 L1 + w_adv * RaGAN, with D frozen for this step (the plain
    module, not DDP: no D gradients to synchronise). Networks run under `compute` (bf16 autocast on
    CUDA), losses in fp32; a non-finite loss skips the update on the device (`guard`).
    """
    sr = compute.run(G, lq)
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
            out["l_percep"] = compute.run(perceptual, sr, gt)
            total = total + c.w_perceptual * out["l_percep"]
        if c.w_adv > 0:
            d_in = fs.high if fs is not None else (lambda x: x)
            real_logits = compute.run(D, d_in(gt)).detach()
            # the relativistic average runs over the global batch under DDP (distributed.global_mean)
            out["l_adv"] = losses.ragan_g_loss(real_logits, compute.run(D, d_in(sr)), mean=global_mean)
            total = total + c.w_adv * out["l_adv"]
    opt_g.zero_grad(set_to_none=True)
    guard.backward(total)
    guard.step(opt_g)
    if D is not None:
        for p in D.parameters():
            p.requires_grad_(True)
    out["g_total"] = total
    return {k: v.detach() for k, v in out.items()}, sr.detach()


def d_step(D, opt_d, sr, gt, *, fs=None, compute: ComputeSettings, guard: StepGuard) -> dict:
    """One discriminator update with the RaGAN loss on (GT, SR); `sr` is already detached."""
    d_in = fs.high if fs is not None else (lambda x: x)
    real_logits = compute.run(D, d_in(gt))
    fake_logits = compute.run(D, d_in(sr))
    loss = losses.ragan_d_loss(real_logits, fake_logits, mean=global_mean)
    opt_d.zero_grad(set_to_none=True)
    guard.backward(loss)
    guard.step(opt_d)
    return {"d_loss": loss.detach(), "d_real": real_logits.detach().mean(), "d_fake": fake_logits.detach().mean()}


def lr_at(step: int, base: float, milestones: tuple[int, ...], gamma: float) -> float:
    """Step schedule (MultiStepLR): `base * gamma**k`, k = milestones already passed before `step`."""
    return base * gamma ** sum(1 for m in milestones if step > m)


def phase_lrs(P: PsnrConfig | GanConfig, step: int) -> tuple[float, float]:
    """(G's, D's) learning rate at `step`: `psnr.lr` (D's unused), or `gan.lr_g` and `gan.lr_d`."""
    lr_g, lr_d = (P.lr, P.lr) if isinstance(P, PsnrConfig) else (P.lr_g, P.lr_d)
    return lr_at(step, lr_g, P.milestones, P.gamma), lr_at(step, lr_d, P.milestones, P.gamma)


@torch.no_grad()
def ema_update(ema: torch.nn.Module, net: torch.nn.Module, decay: float) -> None:
    """ema = decay * ema + (1 - decay) * net (BasicSR `model_ema`); buffers are copied.

    One fused lerp over all parameters (as torch.optim.swa_utils does): RRDBNet has ~700 tensors,
    and a per-tensor loop would be ~1400 kernel launches per step.
    """
    torch._foreach_lerp_(list(ema.parameters()), list(net.parameters()), 1 - decay)
    for e, b in zip(ema.buffers(), net.buffers()):
        e.copy_(b)


@dataclass(frozen=True)
class Criteria:
    """What the steps compute with besides the networks they update."""

    compute: ComputeSettings  # precision, memory format, compile (`accel.ComputeSettings`)
    perceptual: nn.Module | None  # VGG19 conv5_4 L1 (GAN phase, gan.perceptual = vgg19)
    fs: losses.FrequencySeparation | None  # ESRGAN-FS low/high-pass split (fs.enabled)


@dataclass(frozen=True)
class PhaseNets:
    """One phase's networks as the steps use them, and their optimisers (no D in the PSNR phase)."""

    g: StepNets
    ema: nn.Module
    opt_g: torch.optim.Optimizer
    d: StepNets | None = None
    opt_d: torch.optim.Optimizer | None = None


@dataclass(frozen=True)
class PairStream:
    """The training batches: every rank draws the global batch (same stream) and keeps its rows."""

    bank: PairBank
    gen: torch.Generator  # crops, flips, rotations; saved in checkpoints
    rows: slice
    batch: int
    data: DataConfig
    channels_last: bool

    def next(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The next (LQ, GT) batch rows of this rank, on the device."""
        d = self.data
        draws = self.bank.draw(self.gen, self.batch, d.lr_patch, flips=d.flips, rotations=d.rotations)
        return self.bank.batch(
            draws.slice(self.rows.start, self.rows.stop), d.lr_patch, channels_last=self.channels_last
        )


def train_step(step: int, guard: StepGuard, *, nets: PhaseNets, stream: PairStream, crit: Criteria, cfg, P):
    """One training step: learning rates, a batch, `g_step` (and `d_step`), the EMA. (lr, losses)."""
    lr_g, lr_d = phase_lrs(P, step)
    set_lr(nets.opt_g, lr_g)
    if nets.opt_d is not None:
        set_lr(nets.opt_d, lr_d)
    lq, gt = stream.next()
    D_frozen = None if nets.d is None else nets.d.frozen
    out, sr = g_step(
        nets.g.train,
        D_frozen,
        nets.opt_g,
        lq,
        gt,
        cfg,
        perceptual=crit.perceptual,
        fs=crit.fs,
        compute=crit.compute,
        guard=guard,
    )
    if nets.d is not None:
        out.update(d_step(nets.d.train, nets.opt_d, sr, gt, fs=crit.fs, compute=crit.compute, guard=guard))
    ema_update(nets.ema, nets.g.net, cfg.ema_decay)
    return lr_g, out


@dataclass(frozen=True)
class Shared:
    """What both phases use, set up once by `train`."""

    out: Path  # the run folder
    record: dict  # config.json's content (also shown in TensorBoard)
    bank: PairBank  # the training pairs
    held: HeldOut
    lpips: nn.Module | None  # GAN-phase validation, when AlexNet weights are at hand
    crit: Criteria
    phase: Phase  # what was asked: psnr, gan or both
    init: str | Path | None  # --init
    val_every: int
    export_pth: bool


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
    with training_run(run, batch=cfg.batch) as tr:
        S = cfg.data.scale
        if export_pth and S == 3:
            raise SrpipeError(
                "--export-pth: x3 RRDBNets are srpipe-only (BasicSR and spandrel cannot read them); "
                "drop --export-pth or train at x2/x4"
            )
        inputs = {"pairs": str(Path(pairs).resolve()), "init": _file_record(init)}
        record = {"stage": "sr-train", "config": to_dict(cfg), "inputs": inputs}
        phases = list(contract.PHASES) if phase == "both" else [phase]
        fs = losses.FrequencySeparation(cfg.fs.filter, cfg.fs.kernel) if cfg.fs.enabled else None
        info(describe(cfg, phases))
        # Fail early on missing pretrained weights, before reading data or touching the run folder.
        perceptual, lpips = pretrained(cfg, phases, run, tr)

        train_pairs, held, listing = split_pairs(cfg, pairs, cache_dir, tr.device)
        out = tr.open(out_dir, record, clear=contract.RUN_FILES, split=listing)
        # uint8 pairs for batched device-side crops (srpipe.engine.augment), on the GPU when they fit.
        bank = PairBank(train_pairs, S, device=tr.device, placement=run.data_placement)
        tr.announce(f"pairs in {bank.lr.placement} memory")
        info(describe_split(len(train_pairs), held))
        crit = Criteria(tr.compute, perceptual, fs)
        sh = Shared(out, record, bank, held, lpips, crit, phase, init, val_every, export_pth)
        best = json.loads((out / contract.BEST).read_text()) if (out / contract.BEST).is_file() else {}
        results = {}
        for k, name in enumerate(phases):
            path = train_phase(name, k, cfg, tr, sh, best=best)
            if path is not None:
                results[name] = path
        return results


def train_phase(name: str, k: int, cfg: UpscaleConfig, tr: TrainingRun, sh: Shared, *, best: dict) -> Path | None:
    """The `name` phase (the `k`-th run): its weights file, or None when it has 0 steps configured."""
    P = cfg.psnr if name == "psnr" else cfg.gan
    final, ck_dir = sh.out / contract.weights_file(name), sh.out / contract.CKPT / name
    if P.iters == 0:
        info(f"{name} phase: 0 steps configured, skipped")
        return None
    if final.is_file() and Checkpoint.reached(ck_dir, P.iters):
        info(f"{name} phase already complete: {final}")
        return final

    # ---- networks, optimisers, data stream, checkpoint, log
    torch.manual_seed(cfg.seed + k)
    g_args, d_args = cfg.generator_args(), cfg.discriminator_args()
    G = tr.place(new_generator(g_args, start_weights(name, sh.out, sh.phase, sh.init)))
    ema = copy.deepcopy(G).eval().requires_grad_(False)
    opt_g = tr.adam(G.parameters(), lr=phase_lrs(P, 0)[0], betas=P.betas)
    nets = {"generator": (G, "RRDBNet", g_args), "ema": (ema, "RRDBNet", g_args)}
    optimizers = {"opt_g": opt_g}
    D = opt_d = None
    if name == "gan":
        D = tr.place(DISCRIMINATORS[cfg.model.discriminator](**d_args))
        nets["discriminator"] = (D, type(D).__name__, d_args)
        optimizers["opt_d"] = opt_d = tr.adam(D.parameters(), lr=P.lr_d, betas=P.betas)
    gen = torch.Generator().manual_seed(cfg.seed + 1 + k)  # crops, flips, rotations (global batch)
    state = tr.checkpoint(ck_dir, nets, optimizers, gen)
    start = resume(state, f"the {name} phase in {sh.out}", P.iters)
    log = tr.log(sh.out, contract.log_file(name), log_fields(name), start=start, events=name, config=sh.record)

    # ---- the loop
    step_nets = PhaseNets(tr.for_steps(G), ema, opt_g, None if D is None else tr.for_steps(D), opt_d)
    stream = PairStream(sh.bank, gen, tr.rows, cfg.batch, cfg.data, tr.compute.channels_last)
    step = partial(train_step, nets=step_nets, stream=stream, crit=sh.crit, cfg=cfg, P=P)
    seen: dict[int, dict] = {}  # step -> validation results
    lpips = sh.lpips if name == "gan" else None
    check = partial(evaluate, ema=ema, held=sh.held, lpips=lpips, phase=name, out=sh.out, log=log, best=best, seen=seen)
    shown = {k: k for k in ("l_pix", "l_adv", "d_loss", "l_percep")} | {"val_psnr_y": "val PSNR-Y"}
    lr_keys = "psnr.lr" if name == "psnr" else "gan.lr_g / gan.lr_d"
    t0 = time.time()
    G.train()
    tr.steps(
        step,
        phase=PhaseInfo(f"sr-train {name}", shown, name=name, lr_keys=lr_keys, inputs="the training pairs"),
        iters=P.iters,
        start=start,
        state=state,
        log=log,
        guarded=[D] if D is not None else [],
        after_step=every(sh.val_every or ckpt_interval(tr.run, P.iters), check) if tr.main else None,
    )
    if tr.main:
        v = seen.get(P.iters) or check(P.iters)
        save_phase(final, ema, cfg, phase=name, validation=v, export_pth=sh.export_pth)
        info(phase_summary(name, P.iters - start, time.time() - t0, final, v))
    tr.world.barrier()  # the GAN phase of every rank starts from the PSNR weights rank 0 just wrote
    return final


# ---- set-up helpers


def describe(cfg: UpscaleConfig, phases: list[str]) -> str:
    """The first line of a run: the network, the phases and each phase's losses."""
    return (
        f"ESRGAN x{cfg.data.scale}: RRDBNet {cfg.model.num_feat} features, {cfg.model.num_block} blocks; phases: "
        f"{' -> '.join(phases)}; PSNR phase {' + '.join(contract.loss_terms(cfg, 'psnr'))}; "
        f"GAN phase {' + '.join(contract.loss_terms(cfg, 'gan'))}"
    )


def pretrained(cfg: UpscaleConfig, phases: list[str], run: RunOptions, tr: TrainingRun):
    """(VGG19 perceptual loss, LPIPS) of the GAN phase as `contract.pretrained` lists them, None where
    unused; a missing VGG19 fails here, a missing AlexNet leaves LPIPS out of validation."""
    files = contract.pretrained(cfg, "gan") if "gan" in phases else ()
    perceptual = lpips = None
    if contract.PERCEPTUAL in files:
        perceptual = tr.compute.prepare(losses.PerceptualLoss(weights.vgg19_features(run.weights_dir or None)))
    if contract.LPIPS in files and weights.find(contract.LPIPS, run.weights_dir or None) is not None:
        lpips = metrics.LPIPS(weights_dir=run.weights_dir or None).to(tr.device)
    return perceptual, lpips


def log_fields(phase: str) -> list[str]:
    """The columns of `log_<phase>.csv`."""
    fields = ["lr", "l_pix", "g_total", "val_psnr_y", "val_ssim_y", "val_lpips"]
    if phase == "gan":
        fields[2:2] = ["l_pix_full", "l_percep", "l_adv", "d_loss", "d_real", "d_fake"]
    return fields + ["skipped"]


def start_weights(phase: str, out: Path, asked: Phase, init) -> tuple[Path, str] | None:
    """Where G of `phase` starts: (weights file, its name in messages), or None for a random init.

    The PSNR phase starts from `--init` when given; the GAN phase from this run's PSNR model, or
    from `--init` when only the GAN phase was asked for (fine-tuning a published model).
    """
    if phase == "psnr":
        return None if init is None else (init, "--init")
    psnr = out / contract.weights_file("psnr")
    if psnr.is_file() and not (asked == "gan" and init is not None):
        return psnr, "PSNR model"
    if init is not None:
        return init, "--init"
    raise SrpipeError(
        f"the GAN phase starts from the PSNR model, but {psnr} does not "
        "exist: run --phase psnr (or both) first, or pass --init FILE"
    )


def new_generator(g_args: dict, start: tuple[Path, str] | None) -> RRDBNet:
    """A fresh RRDBNet (the global RNG seeds it), loaded from `start` (see `start_weights`) if given."""
    G = RRDBNet(**g_args)
    if start is not None:
        path, what = start
        net, args, _ = interop.load_generator(path)
        if args != g_args:
            diff = ", ".join(
                f"{k} {args.get(k)} (config: {g_args.get(k)})" for k in g_args if args.get(k) != g_args.get(k)
            )
            raise SrpipeError(f"{what} {path} is another network ({diff}); set the model.* config to match it")
        G.load_state_dict(net.state_dict())
    return G


def save_phase(final: Path, ema: nn.Module, cfg: UpscaleConfig, *, phase: str, validation: dict, export_pth: bool):
    """The phase's EMA weights with their record in the header (and the `.pth` copy when asked)."""
    P = cfg.psnr if phase == "psnr" else cfg.gan
    meta = {
        "stage": "sr-train",
        "phase": phase,
        "scale": cfg.data.scale,
        "steps": P.iters,
        "ema_decay": cfg.ema_decay,
        "config": to_dict(cfg),
        "validation": {k: validation[k] for k in validation if k.startswith("val_")},
    }
    interop.save_generator(final, ema.state_dict(), cfg.generator_args(), meta=meta)
    if export_pth:
        interop.export_pth(final.with_name(contract.pth_file(phase)), ema.state_dict(), cfg.generator_args())


def phase_summary(name: str, steps: int, seconds: float, final: Path, v: dict) -> str:
    msg = f"{name} phase: {steps} steps in {seconds:.1f} s -> {final}"
    if "val_psnr_y" in v:
        msg += f" (held-out PSNR-Y {v['val_psnr_y']:.2f} dB, SSIM-Y {v['val_ssim_y']:.4f})"
    return msg


def _file_record(path: str | Path | None) -> dict | None:
    """Path and sha256 of the --init file, for config.json."""
    if path is None:
        return None
    p = interop.resolve_model(path)
    if not p.is_file():
        raise SrpipeError(f"--init {p} does not exist")
    return {"path": str(p.resolve()), "sha256": file_sha256(p)}
