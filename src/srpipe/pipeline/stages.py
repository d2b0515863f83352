"""The pipeline's stages: what each depends on and which library function it calls.

Each stage calls the same library function as its single command (`degrade-train`, `make-pairs`,
`sr-train`, `interpolate`, `upscale`, `eval`...) with its output folder set to its cache entry. A
stage's `version` is bumped by hand when its semantics change (it is part of the cache key).

Order and dependencies:

    degrade -> pairs -> sr_psnr -> sr_gan -> interpolate -> upscale -> eval
    degrade -> test_pairs ---------------------------------> upscale -> eval
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from srpipe.config import RunOptions, resolve_device, to_dict
from srpipe.pipeline.spec import Pipeline


@dataclass(frozen=True)
class Context:
    out: Path  # the stage's cache entry (results go here, nowhere else)
    inputs: dict[str, Path]  # raw input folders and upstream entries, by name
    run: RunOptions


@dataclass(frozen=True)
class Stage:
    name: str
    version: int
    params: dict  # result-changing parameters only (they enter the key)
    raw: dict[str, Path]  # raw input folders (fingerprinted by content)
    deps: tuple[str, ...]  # upstream stages (fingerprinted by their completed outputs)
    fn: Callable[[Context], dict]  # runs the stage, returns a summary for the manifest
    describe: str = ""  # active losses etc., for status and the report


def _stage_run(ctx: Context) -> RunOptions:
    # Stage folders are keyed by config: a "changed config" can never meet an existing run there.
    return replace(ctx.run, restart=False)


def run_degrade(cfg):
    def fn(ctx: Context) -> dict:
        from srpipe.degrade.train import train

        lr = None if cfg.data.same_domain else ctx.inputs["real_lr"]
        train(cfg, hr_dir=ctx.inputs["hr"], lr_dir=lr, out_dir=ctx.out, run=_stage_run(ctx))
        return {"active_losses": cfg.loss.active()}

    return fn


def run_pairs(hr_input: str, cleanup_factor: int, jpeg: str = "auto"):
    def fn(ctx: Context) -> dict:
        from srpipe.degrade.pairs import make_pairs

        m = make_pairs(model=ctx.inputs["degrade"], hr_dir=ctx.inputs[hr_input], out_dir=ctx.out,
                       cleanup_factor=cleanup_factor, device=ctx.run.device, jpeg=jpeg)
        return {"pairs": len(m["pairs"]), "mode": m["mode"]}

    return fn


def run_sr(cfg, phase: str):
    def fn(ctx: Context) -> dict:
        from srpipe.upscale.train import train

        init = ctx.inputs["sr_psnr"] / "psnr.safetensors" if phase == "gan" else None
        paths = train(cfg, pairs=ctx.inputs["pairs"], out_dir=ctx.out, run=_stage_run(ctx), phase=phase, init=init)
        return {"weights": {k: str(Path(v).name) for k, v in paths.items()}}

    return fn


def run_interpolate(alphas: tuple[float, ...]):
    def fn(ctx: Context) -> dict:
        from srpipe.upscale.interpolate import interpolate_files

        files = interpolate_files(ctx.inputs["sr_psnr"] / "psnr.safetensors", ctx.inputs["sr_gan"] / "gan.safetensors",
                                  list(alphas), ctx.out, sweep=True)
        return {"models": [f.name for f in files]}

    return fn


def models_of(inputs: dict[str, Path]) -> dict[str, Path]:
    """Model name -> weights file, for every model the upscale stage runs."""
    models = {"psnr": inputs["sr_psnr"] / "psnr.safetensors", "gan": inputs["sr_gan"] / "gan.safetensors"}
    if "interpolate" in inputs:
        for f in sorted(inputs["interpolate"].glob("alpha_*.safetensors")):
            models[f.stem] = f
    return models


def run_upscale(tile: int, scale: int):
    def fn(ctx: Context) -> dict:
        from srpipe.imageio import list_images, read_image, write_png
        from srpipe.resize import bicubic_up
        from srpipe.upscale.infer import upscale

        lr_dir = ctx.inputs["test_pairs"] / "lr"
        for p in list_images(lr_dir):  # the baseline every model has to beat
            img, info = read_image(p)
            write_png(ctx.out / "bicubic" / f"{p.stem}.png", bicubic_up(img[None], scale)[0], like=info)
        models = models_of(ctx.inputs)
        for name, weights in models.items():
            upscale(weights, lr_dir, ctx.out / name, tile=tile, device=ctx.run.device)
        return {"models": ["bicubic", *models]}

    return fn


def run_eval(scale: int, fid: bool):
    def fn(ctx: Context) -> dict:
        from srpipe.metrics import EvalConfig, evaluate_folders
        from srpipe.runlog import write_json

        gt = ctx.inputs["test_pairs"] / "hr"
        up = ctx.inputs["upscale"]
        results = {}
        for folder in sorted(p for p in up.iterdir() if p.is_dir()):
            r = evaluate_folders(folder, gt, EvalConfig(scale=scale), weights_dir=ctx.run.weights_dir or None,
                                 device=resolve_device(ctx.run.device))
            results[folder.name] = r
        summary = {name: r["summary"] for name, r in results.items()}
        out = {"sr": summary, "notes": sorted({n for r in results.values() for n in r.get("notes", [])})}
        out["degradation"] = degradation_table(ctx, scale, fid)
        write_json(ctx.out / "metrics.json", {**out, "per_image": {k: r["images"] for k, r in results.items()}})
        return out

    return fn


def degradation_table(ctx: Context, scale: int, fid: bool) -> dict | None:
    """Realism of the synthetic LR: held-out real LR vs test-pair LR vs bicubic LR of the same HR."""
    import json

    from srpipe.realism import RealismConfig, degradation_report

    split = json.loads((ctx.inputs["degrade"] / "split.json").read_text())
    if "real_lr" not in ctx.inputs or not split["held_out"]:
        return None
    real = [ctx.inputs["real_lr"] / n for n in split["held_out"]]
    pairs = ctx.inputs["test_pairs"]
    synthetic = sorted((pairs / "lr").glob("*.png"))
    hr = sorted((pairs / "hr").glob("*.png"))
    return degradation_report(real, synthetic, hr, scale, cfg=RealismConfig(inception=fid),
                              weights_dir=ctx.run.weights_dir or None, device=resolve_device(ctx.run.device))


def build_stages(p: Pipeline) -> list[Stage]:
    """The stages `p` enables, in run order."""
    d = p.degrade
    raw = {"hr": p.inputs["hr"]}
    if not d.data.same_domain:
        raw["real_lr"] = p.inputs["real_lr"]
    stages = [
        Stage("degrade", 1, {"config": to_dict(d)}, raw, (), run_degrade(d), ", ".join(d.loss.active())),
        Stage("pairs", 1, {"cleanup_factor": p.cleanup_factor, "jpeg": p.jpeg}, {"pairs_hr": p.inputs["pairs_hr"]},
              ("degrade",), run_pairs("pairs_hr", p.cleanup_factor, p.jpeg)),
    ]
    has_test = "test_hr" in p.inputs
    if has_test:
        stages.append(Stage("test_pairs", 1, {"cleanup_factor": p.cleanup_factor, "jpeg": p.jpeg},
                            {"test_hr": p.inputs["test_hr"]}, ("degrade",), run_pairs("test_hr", p.cleanup_factor, p.jpeg)))
    if p.sr is None:
        return stages
    full = to_dict(p.sr)
    # The PSNR phase does not depend on GAN-phase settings: changing those must not retrain it.
    psnr_params = {k: v for k, v in full.items() if k not in ("gan", "fs")}
    psnr_params["model"] = {k: v for k, v in full["model"].items() if k not in ("discriminator", "d_features", "d_layers")}
    stages.append(Stage("sr_psnr", 1, {"config": psnr_params}, {}, ("pairs",), run_sr(p.sr, "psnr"), "L1"))
    stages.append(Stage("sr_gan", 1, {"config": full}, {}, ("pairs", "sr_psnr"), run_sr(p.sr, "gan"), _gan_losses(p.sr)))
    if p.alphas:
        stages.append(Stage("interpolate", 1, {"alphas": list(p.alphas)}, {}, ("sr_psnr", "sr_gan"),
                            run_interpolate(p.alphas)))
    if has_test:
        ups = ("test_pairs", "sr_psnr", "sr_gan") + (("interpolate",) if p.alphas else ())
        stages.append(Stage("upscale", 1, {"tile": p.tile, "scale": p.sr.data.scale}, {}, ups,
                            run_upscale(p.tile, p.sr.data.scale)))
        if p.eval:
            eval_raw = {"real_lr": p.inputs["real_lr"]} if "real_lr" in p.inputs else {}
            stages.append(Stage("eval", 1, {"scale": p.sr.data.scale, "fid": p.fid}, eval_raw,
                                ("degrade", "test_pairs", "upscale"), run_eval(p.sr.data.scale, p.fid)))
    return stages


def _gan_losses(cfg) -> str:
    g = cfg.gan
    parts = [f"L1 x{g.w_pixel:g}" + (" (low-pass)" if cfg.fs.enabled else "")]
    if g.perceptual != "none" and g.w_perceptual > 0:
        parts.append(f"VGG19 conv5_4 x{g.w_perceptual:g}")
    if g.w_adv > 0:
        parts.append(f"RaGAN x{g.w_adv:g}")
    return ", ".join(parts)
