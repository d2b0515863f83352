"""`srpipe sr-train`, `interpolate`, `upscale` and `export`: the ESRGAN half of srpipe."""

from __future__ import annotations

import click

from srpipe.cli.options import build, config_options, run_options, training_options
from srpipe.config import INFER_PRECISIONS
from srpipe.upscale.config import PRESETS


@click.command("sr-train")
@click.option(
    "--pairs", required=True, type=click.Path(), help="Folder with hr/ and lr/ of matching names (make-pairs output)."
)
@click.option(
    "--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Run folder (resumed if it exists)."
)
@click.option(
    "--phase",
    type=click.Choice(["psnr", "gan", "both"]),
    default="both",
    show_default=True,
    help="PSNR phase (L1), GAN phase (from OUT/psnr.safetensors or --init), or one after the other.",
)
@click.option("--psnr-iters", type=int, default=None, help="PSNR-phase steps (default: from the preset).")
@click.option("--gan-iters", type=int, default=None, help="GAN-phase steps (default: from the preset).")
@click.option(
    "--scale",
    type=int,
    default=None,
    help="SR factor: 1, 2, 3 or 4 (default 4); must match the pairs. x3 is srpipe-only (not exportable).",
)
@click.option(
    "--init",
    type=click.Path(),
    default=None,
    help="Start from existing ESRGAN weights (any layout: srpipe, BasicSR, ESRGAN, ESRGAN-FS), e.g. to fine-tune "
    "a published model.",
)
@click.option(
    "--fs",
    is_flag=True,
    default=None,
    help="Frequency separation (ESRGAN-FS): pixel loss on low-passes, discriminator on high-passes.",
)
@click.option(
    "--perceptual/--no-perceptual",
    default=None,
    help="VGG19 perceptual loss in the GAN phase (default: on for paper, off for tiny).",
)
@click.option("--val-fraction", type=float, default=None, help="Share of pairs held out for validation (default 0.1).")
@click.option(
    "--val-every", type=int, default=0, help="Steps between validations and sample grids (0: with checkpoints)."
)
@click.option("--export-pth", is_flag=True, help="Also write BasicSR-style psnr.pth / gan.pth ({params, params_ema}).")
@click.option("--restart", is_flag=True, help="Start over in OUT even if it holds a run with another config.")
@click.option("--ckpt-every", type=int, default=0, help="Steps between checkpoints (0: about ten per phase).")
@config_options(PRESETS)
@run_options
@training_options
def sr_train(
    pairs,
    out_dir,
    phase,
    psnr_iters,
    gan_iters,
    scale,
    init,
    fs,
    perceptual,
    val_fraction,
    val_every,
    export_pth,
    restart,
    ckpt_every,
    preset,
    config_file,
    sets,
    device,
    weights_dir,
    training,
):
    """Train ESRGAN on LR/HR pairs: L1 (PSNR) phase, then RaGAN + perceptual (GAN) phase.

    Several GPUs: torchrun --nproc-per-node N -m srpipe sr-train ... (DDP; batch is the global batch).
    """
    from srpipe.config import RunOptions
    from srpipe.upscale.config import UpscaleConfig

    cfg = build(
        UpscaleConfig,
        PRESETS,
        preset,
        config_file,
        sets,
        {
            "data.scale": scale,
            "psnr.iters": psnr_iters,
            "gan.iters": gan_iters,
            "data.val_fraction": val_fraction,
            "fs.enabled": fs,
            "gan.perceptual": None if perceptual is None else "vgg19" if perceptual else "none",
        },
    )
    run = RunOptions(device=device, restart=restart, ckpt_every=ckpt_every, weights_dir=weights_dir or "", **training)
    from srpipe.cli.console import out
    from srpipe.upscale.train import train

    result = train(
        cfg, pairs=pairs, out_dir=out_dir, run=run, phase=phase, init=init, val_every=val_every, export_pth=export_pth
    )
    for name, path in result.items():
        out.print(f"{name}: {path}")


@click.command("interpolate")
@click.option("--psnr", "psnr_model", required=True, type=click.Path(), help="PSNR-phase weights (alpha 0).")
@click.option("--gan", "gan_model", required=True, type=click.Path(), help="GAN-phase weights (alpha 1).")
@click.option(
    "--alpha",
    type=float,
    default=None,
    help="Weight of the GAN model: theta = (1 - alpha) * PSNR + alpha * GAN (ESRGAN's net_interp.py convention).",
)
@click.option(
    "--sweep",
    default=None,
    metavar="START:STOP:STEP",
    help="Several alphas, e.g. 0:1:0.1; --out is then a folder of alpha_0.80.safetensors etc.",
)
@click.option(
    "--out", "out_path", required=True, type=click.Path(), help="Output .safetensors (or folder with --sweep)."
)
@click.option("--export-pth", is_flag=True, help="Also write a BasicSR-style .pth next to each file.")
def interpolate(psnr_model, gan_model, alpha, sweep, out_path, export_pth):
    """Blend the PSNR and GAN models (network interpolation, ESRGAN Sec. 3.4).

    ALPHA weights the GAN model: 0 gives the PSNR model, 1 the GAN model, 0.8 mostly GAN textures with
    fewer artefacts. (Real-ESRGAN's --dni_weight counts the other way round.)
    """
    if (alpha is None) == (sweep is None):
        raise click.UsageError("give exactly one of --alpha A or --sweep START:STOP:STEP")
    from srpipe.cli.console import out
    from srpipe.upscale.interpolate import check_alpha, interpolate_files, parse_sweep

    alphas = parse_sweep(sweep) if sweep is not None else [check_alpha(alpha)]
    for path in interpolate_files(
        psnr_model, gan_model, alphas, out_path, sweep=sweep is not None, export_pth=export_pth
    ):
        out.print(str(path))


@click.command("upscale")
@click.option(
    "--model",
    required=True,
    type=click.Path(),
    help="Weights file (any ESRGAN layout), sr-train run folder, or .onnx file (run by onnxruntime).",
)
@click.option("--input", "inputs", required=True, type=click.Path(), help="Image file or folder of images.")
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False),
    help="Folder for the results (PNG unless --ext).",
)
@click.option(
    "--tile", type=int, default=256, show_default=True, help="Tile size in input pixels (0: whole image at once)."
)
@click.option(
    "--tile-pad",
    type=int,
    default=32,
    show_default=True,
    help="Context pixels around each tile (cropped off after the network), so seams stay invisible.",
)
@click.option(
    "--feather",
    is_flag=True,
    help="Blend overlapping tiles with linear ramps instead of cropping their borders (measured worse at equal pad).",
)
@click.option(
    "--precision",
    type=click.Choice(INFER_PRECISIONS),
    default="auto",
    show_default=True,
    help="auto: fp16 on GPU (a tile with non-finite output reruns in fp32), fp32 on CPU and for 16-bit images.",
)
@click.option(
    "--outscale",
    type=float,
    default=None,
    help="Final size factor, resized after the network (e.g. 3.5 with a x4 model).",
)
@click.option(
    "--batch",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Tiles per forward pass (0: auto, several on a GPU within a device-memory budget, 1 on the CPU).",
)
@click.option(
    "--compile/--no-compile",
    "compile_",
    default=False,
    show_default=True,
    help="torch.compile the network: a compile per tile shape first, faster after (large folders on a GPU).",
)
@click.option("--skip-existing", is_flag=True, help="Skip inputs whose output already exists.")
@click.option(
    "--ext",
    type=click.Choice(["png", "jpg", "webp"]),
    default="png",
    show_default=True,
    help="Output format: png keeps 16-bit, gray and alpha; jpg/webp are 8-bit (jpg drops alpha).",
)
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
def upscale(
    model, inputs, out_dir, tile, tile_pad, feather, precision, outscale, batch, compile_, skip_existing, ext, device
):
    """Upscale images of any size with a trained model, tile by tile (alpha, 16-bit and gray kept)."""
    from srpipe.cli.console import out
    from srpipe.upscale.infer import upscale as run_upscale

    written = run_upscale(
        model,
        inputs,
        out_dir,
        tile=tile,
        tile_pad=tile_pad,
        blend=feather,
        precision=precision,
        device=device,
        outscale=outscale,
        skip_existing=skip_existing,
        batch=batch,
        compile=compile_,
        ext=ext,
    )
    out.print(f"{len(written)} image(s) written to {out_dir}")


@click.command("export")
@click.option(
    "--model", required=True, type=click.Path(), help="Weights file (any ESRGAN layout) or sr-train run folder."
)
@click.option(
    "--out",
    "out_path",
    required=True,
    type=click.Path(dir_okay=False),
    help="FILE.pth (BasicSR {params, params_ema}), FILE.safetensors (BasicSR names; spandrel/chaiNNer read "
    "both) or FILE.onnx.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["pth", "safetensors", "onnx"]),
    default=None,
    help="Output format (default: from the --out suffix).",
)
@click.option("--fp16", is_flag=True, help="ONNX: half-precision weights, input and output.")
@click.option("--opset", type=int, default=None, help="ONNX opset (default 17).")
def export(model, out_path, fmt, fp16, opset):
    """Convert ESRGAN weights to BasicSR .pth, .safetensors or ONNX (dynamic batch/height/width) for other tools.

    ONNX files are checked with onnxruntime against torch on a real photo after writing. x3 models
    export to ONNX only.
    """
    from srpipe.cli.console import out
    from srpipe.upscale.interop import export as run_export

    out.print(str(run_export(model, out_path, fmt=fmt, fp16=fp16, opset=opset)))
