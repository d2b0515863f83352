"""`srpipe degrade-train` and `srpipe make-pairs`."""

from __future__ import annotations

import click

from srpipe.cli.options import build, config_options, run_options, training_options
from srpipe.config import INFER_PRECISIONS
from srpipe.degrade.config import DEFAULT_METHOD, METHODS, PDM_PRESETS, PRESETS


class OldSpellings(click.Option):
    """An option whose first name is the one --help shows; the others still work (old names that
    scripts may use, e.g. --lr for --real-lr, from when `lr` also meant low resolution)."""

    def get_help_record(self, ctx: click.Context):
        names, self.opts = self.opts, self.opts[:1]
        try:
            return super().get_help_record(ctx)
        finally:
            self.opts = names


@click.command("degrade-train")
@click.option("--hr", "hr_dir", required=True, type=click.Path(), help="Folder of clean high-resolution photos.")
@click.option(
    "--real-lr",
    "--lr",
    "real_lr_dir",
    cls=OldSpellings,
    type=click.Path(),
    default=None,
    help="Folder of real low-quality photos of the target domain (not needed with --same-domain).",
)
@click.option(
    "--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Run folder (resumed if it exists)."
)
@click.option(
    "--method",
    type=click.Choice(METHODS),
    default=DEFAULT_METHOD,
    show_default=True,
    help="pdm: an explicit blur kernel + noise + JPEG (learns blur); dsgan: a CNN on the bicubic LR (noise, JPEG).",
)
@click.option("--scale", type=int, default=None, help="Downscaling factor: 2, 3 or 4 (default: from the preset, 4).")
@click.option("--iters", type=int, default=None, help="Training steps (default: from the preset).")
@click.option(
    "--same-domain",
    is_flag=True,
    default=None,
    help="Official DSGAN mode: real samples are native-resolution crops of the HR folder.",
)
@click.option("--restart", is_flag=True, help="Start over in OUT even if it holds a run with another config.")
@click.option("--ckpt-every", type=int, default=0, help="Steps between checkpoints (0: about ten per run).")
@click.option("--sample-every", type=int, default=0, help="Steps between sample grids (0: at the end).")
@config_options(PRESETS)
@run_options
@training_options
def degrade_train(
    hr_dir,
    real_lr_dir,
    out_dir,
    method,
    scale,
    iters,
    same_domain,
    restart,
    ckpt_every,
    sample_every,
    preset,
    config_file,
    sets,
    device,
    weights_dir,
    training,
):
    """Learn the degradation of the real-LR domain from two unpaired folders (pdm or DSGAN).

    Several GPUs: torchrun --nproc-per-node N -m srpipe degrade-train ... (DDP; optim.batch is global).
    """
    from srpipe.config import RunOptions
    from srpipe.degrade.config import DegradeConfig, PDMConfig
    from srpipe.degrade.contract import KERNEL

    if method == "pdm" and same_domain:
        raise click.UsageError("--same-domain is a DSGAN mode; --method pdm learns from a real-LR folder (--real-lr)")
    cls, presets = (PDMConfig, PDM_PRESETS) if method == "pdm" else (DegradeConfig, PRESETS)
    overrides = {"data.scale": scale, "optim.iters": iters}
    if method == "dsgan":
        overrides["data.same_domain"] = same_domain
    cfg = build(cls, presets, preset, config_file, sets, overrides)
    if real_lr_dir is None and not cfg.data.same_domain:
        raise click.UsageError("--real-lr DIR is required (or pass --same-domain to use crops of --hr as real samples)")
    run = RunOptions(
        device=device,
        restart=restart,
        ckpt_every=ckpt_every,
        sample_every=sample_every,
        weights_dir=weights_dir or "",
        **training,
    )
    from srpipe.cli.console import out

    if method == "pdm":
        from srpipe.degrade.pdm_train import train
    else:
        from srpipe.degrade.train import train
    result = train(cfg, hr_dir=hr_dir, real_lr_dir=real_lr_dir, out_dir=out_dir, run=run)
    out.print(f"model ({method}): {result}")
    learned = result.parent / KERNEL
    if method == "pdm" and learned.is_file():
        import json

        from srpipe.degrade.pdm_train import describe

        out.print(describe(json.loads(learned.read_text())))


@click.command("make-pairs")
@click.option(
    "--degradation",
    type=click.Choice(["learned", "blind"]),
    default="learned",
    show_default=True,
    help="learned: a degrade-train model (--model); blind: Real-ESRGAN's second-order synthetic degradation "
    "(no model), the usual alternative to learning one.",
)
@click.option(
    "--model", default=None, type=click.Path(), help="degrade-train run folder or generator.safetensors (learned)."
)
@click.option("--hr", "hr_dir", required=True, type=click.Path(), help="Folder of HR images to pair.")
@click.option(
    "--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Writes OUT/hr, OUT/lr, OUT/pairs.json."
)
@click.option(
    "--cleanup-factor",
    type=int,
    default=1,
    show_default=True,
    help="TDSR: first clean HR by a bicubic downscale of this factor (1 = SDSR, HR kept).",
)
@click.option("--tile", type=int, default=512, show_default=True, help="Tile size in LR pixels for large images.")
@click.option(
    "--precision",
    type=click.Choice(INFER_PRECISIONS),
    default="auto",
    show_default=True,
    help="auto: fp16 on GPU (a tile batch with non-finite output reruns in fp32), fp32 on CPU.",
)
@click.option(
    "--batch",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Tiles per forward pass (0: auto, several on a GPU, 1 on the CPU).",
)
@click.option(
    "--compile/--no-compile",
    "compile_",
    default=False,
    show_default=True,
    help="torch.compile the generator (pays off on large folders on a GPU).",
)
@click.option(
    "--jpeg",
    "jpeg",
    default="auto",
    show_default=True,
    help="JPEG stage after the generator: auto (qualities estimated from the real LR by degrade-train), "
    "off, a quality Q (1-100), or QMIN:QMAX (uniform per image).",
)
@click.option(
    "--jpeg-seed",
    type=int,
    default=0,
    show_default=True,
    help="Seed of the per-image quality draw (with the image name; order-independent).",
)
@click.option(
    "--draws", type=int, default=1, show_default=True, help="blind: LR images per HR (NAME_d0, NAME_d1, ...)."
)
@click.option(
    "--seed", type=int, default=0, show_default=True, help="blind: seed of the per-image draws (with the name)."
)
@click.option("--scale", type=int, default=4, show_default=True, help="blind: downscaling factor, 2, 3 or 4.")
@run_options
@click.pass_context
def make_pairs(
    ctx,
    degradation,
    model,
    hr_dir,
    out_dir,
    cleanup_factor,
    tile,
    precision,
    batch,
    compile_,
    jpeg,
    jpeg_seed,
    draws,
    seed,
    scale,
    device,
    weights_dir,
):
    """Turn an HR folder into realistic LR/HR pairs: with a trained degradation model, or blind."""
    from srpipe.cli.console import out
    from srpipe.degrade.pairs import make_pairs as run_make_pairs
    from srpipe.errors import UsageError
    from srpipe.io.jpeg import parse_jpeg

    learned_only = ("model", "cleanup_factor", "tile", "precision", "batch", "compile_", "jpeg", "jpeg_seed")
    other = learned_only if degradation == "blind" else ("draws", "seed", "scale")
    given = [n for n in other if ctx.get_parameter_source(n) == click.core.ParameterSource.COMMANDLINE]
    if given:
        flags = ", ".join("--" + n.rstrip("_").replace("_", "-") for n in given)
        raise UsageError(f"{flags} cannot be used with --degradation {degradation}")
    if degradation == "blind":
        from srpipe.degrade.blind import make_blind_pairs

        manifest = make_blind_pairs(hr_dir=hr_dir, out_dir=out_dir, scale=scale, draws=draws, seed=seed)
        out.print(f"{len(manifest['pairs'])} blind pairs (x{scale}, {draws} draw(s) per HR) in {out_dir}")
        return
    if model is None:
        raise UsageError("make-pairs needs --model RUN (a degrade-train run), or --degradation blind for no model")
    spec = parse_jpeg(jpeg)  # a usage error (exit 2) before the model is loaded
    manifest = run_make_pairs(
        model=model,
        hr_dir=hr_dir,
        out_dir=out_dir,
        cleanup_factor=cleanup_factor,
        tile=tile,
        device=device,
        precision=precision,
        batch=batch,
        compile=compile_,
        jpeg=spec,
        jpeg_seed=jpeg_seed,
    )
    out.print(f"{len(manifest['pairs'])} pairs (x{manifest['scale']}) in {out_dir}")
