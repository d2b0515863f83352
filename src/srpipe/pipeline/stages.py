"""The pipeline's stages: what each depends on and which library function it calls.

Each stage calls the same library function as its single command (`degrade-train`, `make-pairs`,
`sr-train`, `interpolate`, `upscale`, `eval`...) with its output folder set to its cache entry. A
stage's `version` is bumped by hand when its semantics change (it is part of the cache key).

Order and dependencies:

    degrade -> pairs -> sr_psnr -> sr_gan -> interpolate -> upscale -> eval
    degrade -> test_pairs ---------------------------------> upscale -> eval
    bicubic_pairs -> baseline_bicubic ----------------------> upscale -> eval
    blind_pairs -> baseline_blind --------------------------> upscale -> eval

`degrade` calls the `[degrade] method`'s trainer (DSGAN's or PDM's `train`). Each `[baseline] kinds`
entry trains the same SR recipe and budget on pairs a user could make without learning anything, from
the same HR: bicubic LR (`bicubic_down`), or Real-ESRGAN's blind degradation
(`srpipe.degrade.blind.make_blind_pairs`). What the learned degradation is worth is the difference
between the models on the target domain's real images. `upscale` also runs the models on the real LR
images degrade held out (split.json; no ground truth) and on `[inputs] test_pairs` (real LR/HR pairs),
which `eval` scores. A baseline's models are named `baseline_<kind>_psnr` and `baseline_<kind>_gan`.

A stage's key (and the identity its run folder resumes on) is made from `Stage.params`, the content
of `Stage.raw`, the outputs of `Stage.deps` and the identity of each file in `Stage.weights`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from srpipe.config import RunOptions, resolve_device, to_dict
from srpipe.pipeline.baseline_pairs import run_bicubic_pairs, run_blind_pairs
from srpipe.pipeline.spec import Pipeline, degrade_setting

REAL = "real"  # upscale entry sub-folder of the real LR sets: real/<set>/lr (inputs), real/<set>/<model>
HELD_OUT = "held_out_real"  # the real LR images degrade held out (target domain, no ground truth)
REAL_PAIRS = "real_pairs"  # [inputs] test_pairs: real LR/HR pairs
MAX_HELD_OUT = 8  # held-out real LR images upscaled by every model (bounded time on a CPU)
BASELINE = "baseline_"  # prefix of the baseline stages (baseline_<kind>) and of their models


def baseline_models(kind: str) -> tuple[str, str]:
    """The PSNR- and GAN-phase model names of a baseline kind, as upscale writes them."""
    return f"{BASELINE}{kind}_psnr", f"{BASELINE}{kind}_gan"


def real_set_models(models) -> list[str]:
    """The models compared on real LR: srpipe's PSNR model and each baseline's, then the GAN models."""
    base = [m for m in models if m.startswith(BASELINE)]
    return [m for m in ("psnr", *[b for b in base if b.endswith("_psnr")], "gan") if m in models] + [
        b for b in base if b.endswith("_gan")
    ]


@dataclass(frozen=True)
class Context:
    out: Path  # the stage's cache entry (results go here, nowhere else)
    inputs: dict[str, Path]  # raw input folders and upstream entries, by name
    run: RunOptions
    key: str = ""  # the stage key: the identity its run folder resumes on


@dataclass(frozen=True)
class Stage:
    name: str
    version: int
    params: dict  # result-changing parameters only (they enter the key)
    raw: dict[str, Path]  # raw input folders (fingerprinted by content)
    deps: tuple[str, ...]  # upstream stages (fingerprinted by their completed outputs)
    fn: Callable[[Context], dict]  # runs the stage, returns a summary for the manifest
    describe: str = ""  # active losses etc., for status and the report
    weights: tuple[
        str, ...
    ] = ()  # pretrained files it uses (srpipe.engine.weights names): their identity enters the key


def _stage_run(ctx: Context) -> RunOptions:
    # The entry folder is named by the key, and the run folder resumes on the key alone: settings the
    # key leaves out (GAN settings for the PSNR phase) and input or cache paths may change meanwhile.
    return replace(ctx.run, restart=False, resume_identity=ctx.key)


def run_degrade(cfg, method: str):
    def fn(ctx: Context) -> dict:
        if method == "pdm":
            from srpipe.degrade.pdm_train import train
        else:
            from srpipe.degrade.train import train

        lr = None if degrade_setting(cfg, "same_domain", False) else ctx.inputs["real_lr"]
        train(cfg, hr_dir=ctx.inputs["hr"], lr_dir=lr, out_dir=ctx.out, run=_stage_run(ctx))
        return {"method": method, "active_losses": _active_losses(cfg)}

    return fn


def _active_losses(cfg) -> list[str]:
    loss = getattr(cfg, "loss", None)
    return list(loss.active()) if hasattr(loss, "active") else []


def run_pairs(hr_input: str, cleanup_factor: int, jpeg: str = "auto"):
    def fn(ctx: Context) -> dict:
        from srpipe.degrade.pairs import make_pairs

        m = make_pairs(
            model=ctx.inputs["degrade"],
            hr_dir=ctx.inputs[hr_input],
            out_dir=ctx.out,
            cleanup_factor=cleanup_factor,
            device=ctx.run.device,
            jpeg=jpeg,
        )
        return {"pairs": len(m["pairs"]), "mode": m["mode"]}

    return fn


def run_sr(cfg, phase: str, pairs: str = "pairs"):
    def fn(ctx: Context) -> dict:
        from srpipe.upscale.train import train

        init = ctx.inputs["sr_psnr"] / "psnr.safetensors" if phase == "gan" else None
        paths = train(cfg, pairs=ctx.inputs[pairs], out_dir=ctx.out, run=_stage_run(ctx), phase=phase, init=init)
        return {"weights": {k: str(Path(v).name) for k, v in paths.items()}}

    return fn


def run_interpolate(alphas: tuple[float, ...]):
    def fn(ctx: Context) -> dict:
        from srpipe.upscale.interpolate import interpolate_files

        files = interpolate_files(
            ctx.inputs["sr_psnr"] / "psnr.safetensors",
            ctx.inputs["sr_gan"] / "gan.safetensors",
            list(alphas),
            ctx.out,
            sweep=True,
        )
        return {"models": [f.name for f in files]}

    return fn


def models_of(inputs: dict[str, Path]) -> dict[str, Path]:
    """Model name -> weights file, for every model the upscale stage runs."""
    models = {"psnr": inputs["sr_psnr"] / "psnr.safetensors", "gan": inputs["sr_gan"] / "gan.safetensors"}
    if "interpolate" in inputs:
        for f in sorted(inputs["interpolate"].glob("alpha_*.safetensors")):
            models[f.stem] = f
    for stage in sorted(k for k in inputs if k.startswith(BASELINE)):
        psnr, gan = baseline_models(stage[len(BASELINE) :])
        models[psnr] = inputs[stage] / "psnr.safetensors"
        models[gan] = inputs[stage] / "gan.safetensors"
    return models


def held_out_real(inputs: dict[str, Path], limit: int | None = MAX_HELD_OUT) -> list[Path]:
    """The real LR images degrade held out (never seen by its discriminator), the first `limit` by name."""
    import json

    if "real_lr" not in inputs or "degrade" not in inputs:
        return []
    split = json.loads((inputs["degrade"] / "split.json").read_text())
    return [inputs["real_lr"] / n for n in sorted(split["held_out"])[:limit]]


def run_upscale(tile: int, scale: int):
    def fn(ctx: Context) -> dict:
        import shutil

        models = models_of(ctx.inputs)
        real_models = {name: models[name] for name in real_set_models(models)}
        kw = dict(scale=scale, tile=tile, device=ctx.run.device)
        sets = []
        if "test_pairs" in ctx.inputs:  # made by srpipe's generator: fit to the learned degradation
            upscale_set(ctx.inputs["test_pairs"] / "lr", ctx.out, models, **kw)
            sets.append("test_pairs")
        held = held_out_real(ctx.inputs)
        if held:
            lr_dir = ctx.out / REAL / HELD_OUT / "lr"
            lr_dir.mkdir(parents=True, exist_ok=True)
            for f in held:  # the inputs themselves, for the report's side-by-side crops
                shutil.copyfile(f, lr_dir / f.name)
            upscale_set(lr_dir, ctx.out / REAL / HELD_OUT, real_models, **kw)
            sets.append(HELD_OUT)
        if "real_pairs_lr" in ctx.inputs:
            upscale_set(ctx.inputs["real_pairs_lr"], ctx.out / REAL / REAL_PAIRS, real_models, **kw)
            sets.append(REAL_PAIRS)
        return {"models": ["bicubic", *models], "sets": sets}

    return fn


def upscale_set(lr_dir: Path, dest: Path, models: dict[str, Path], *, scale: int, tile: int, device: str) -> None:
    """One LR set upscaled into dest/<model>/: bicubic, the baseline every model has to beat, then each model."""
    from functools import partial

    from srpipe.engine.folders import map_folder
    from srpipe.upscale.infer import upscale

    map_folder(lr_dir, partial(_bicubic_up, dest=dest / "bicubic", scale=scale), what="LR")
    for name, model in models.items():
        upscale(model, lr_dir, dest / name, tile=tile, device=device)


def _bicubic_up(p: Path, *, dest: Path, scale: int) -> None:
    from srpipe.io.imageio import read_image, write_png
    from srpipe.io.resize import bicubic_up

    img, info = read_image(p)
    write_png(dest / f"{p.stem}.png", bicubic_up(img[None], scale)[0], like=info)


def model_folders(folder: Path) -> list[Path]:
    """The per-model output folders of an upscale entry (or of one of its real LR sets)."""
    return sorted(p for p in folder.iterdir() if p.is_dir() and p.name not in (REAL, "lr"))


def run_eval(scale: int, fid: bool):
    def fn(ctx: Context) -> dict:
        from srpipe.eval.metrics import EvalConfig, evaluate_folders
        from srpipe.io.files import write_json

        def score(up: Path, gt: Path) -> dict:
            return {
                f.name: evaluate_folders(
                    f,
                    gt,
                    EvalConfig(scale=scale),
                    weights_dir=ctx.run.weights_dir or None,
                    device=resolve_device(ctx.run.device),
                )
                for f in model_folders(up)
            }

        up = ctx.inputs["upscale"]
        out: dict = {"sr": {}, "notes": []}
        per_image: dict = {}
        if "test_pairs" in ctx.inputs:
            results = score(up, ctx.inputs["test_pairs"] / "hr")
            out["sr"] = {name: r["summary"] for name, r in results.items()}
            out["notes"] += sorted({n for r in results.values() for n in r.get("notes", [])})
            per_image = {k: r["images"] for k, r in results.items()}
        if "real_pairs_hr" in ctx.inputs:
            results = score(up / REAL / REAL_PAIRS, ctx.inputs["real_pairs_hr"])
            out[REAL_PAIRS] = {
                "sr": {name: r["summary"] for name, r in results.items()},
                "per_image": {k: r["images"] for k, r in results.items()},
            }
        held = held_out_real(ctx.inputs)
        out[HELD_OUT] = [f.name for f in held]
        out["degradation"] = degradation_table(ctx, scale, fid)
        write_json(ctx.out / "metrics.json", {**out, "per_image": per_image})
        return {
            "sr": out["sr"],
            REAL_PAIRS: (out.get(REAL_PAIRS) or {}).get("sr"),
            HELD_OUT: len(held),
            "notes": out["notes"],
        }

    return fn


def degradation_table(ctx: Context, scale: int, fid: bool) -> dict | None:
    """Realism of the two SR models' training inputs: held-out real LR vs synthetic LR vs bicubic LR.

    The synthetic LR is the test pairs' (the same generator made the training pairs), else the training
    pairs'; the bicubic LR is bicubic_down of the same HR, i.e. what the baseline was trained on.
    """
    from srpipe.io.imageio import list_images
    from srpipe.eval.realism import RealismConfig, degradation_report, pairs_manifest

    real = held_out_real(ctx.inputs, limit=None)
    if not real:
        return None
    source = "test_pairs" if "test_pairs" in ctx.inputs else "pairs"
    pairs = ctx.inputs[source]
    report = degradation_report(
        real,
        list_images(pairs / "lr"),
        list_images(pairs / "hr"),
        scale,
        cfg=RealismConfig(inception=fid),
        weights_dir=ctx.run.weights_dir or None,
        device=resolve_device(ctx.run.device),
        pairs=pairs_manifest(pairs / "lr"),  # what make-pairs applied: the advice suggests only the rest
    )
    return {**report, "synthetic_from": source}


def degrade_weights(d) -> tuple[str, ...]:
    """Pretrained files degrade-train uses: LPIPS's backbone for the perceptual loss, Inception for
    the KID/FID rows of degradation.json (only with held-out real LR)."""
    out = []
    loss = getattr(d, "loss", None)
    perceptual = getattr(loss, "perceptual", "none")
    if perceptual in ("lpips-alex", "lpips-vgg") and getattr(loss, "w_perceptual", 0) > 0:
        out.append({"lpips-alex": "alexnet", "lpips-vgg": "vgg16"}[perceptual])
    if degrade_setting(d, "val_fraction", 0) > 0 and not degrade_setting(d, "same_domain", False):
        out.append("inception")
    return tuple(out)


def sr_weights(cfg, phase: str) -> tuple[str, ...]:
    """Pretrained files sr-train uses in `phase`: VGG19 (perceptual loss) and AlexNet (LPIPS validation,
    which picks best.json's step in the GAN phase when the file is present)."""
    if phase == "psnr":
        return ()
    out = []
    if cfg.gan.perceptual == "vgg19" and cfg.gan.w_perceptual > 0:
        out.append("vgg19")
    if cfg.data.val_fraction > 0:
        out.append("alexnet")
    return tuple(out)


def build_stages(p: Pipeline) -> list[Stage]:
    """The stages `p` enables, in run order."""
    d = p.degrade
    same_domain = degrade_setting(d, "same_domain", False)
    raw = {"hr": p.inputs["hr"]}
    if not same_domain:
        raw["real_lr"] = p.inputs["real_lr"]
    stages = [
        Stage(
            "degrade",
            1,
            {"method": p.method, "config": to_dict(d)},
            raw,
            (),
            run_degrade(d, p.method),
            ", ".join([p.method, *_active_losses(d)]),
            weights=degrade_weights(d),
        ),
        Stage(
            "pairs",
            1,
            {"cleanup_factor": p.cleanup_factor, "jpeg": p.jpeg},
            {"pairs_hr": p.inputs["pairs_hr"]},
            ("degrade",),
            run_pairs("pairs_hr", p.cleanup_factor, p.jpeg),
        ),
    ]
    has_test = "test_hr" in p.inputs
    if has_test:
        stages.append(
            Stage(
                "test_pairs",
                1,
                {"cleanup_factor": p.cleanup_factor, "jpeg": p.jpeg},
                {"test_hr": p.inputs["test_hr"]},
                ("degrade",),
                run_pairs("test_hr", p.cleanup_factor, p.jpeg),
            )
        )
    if p.sr is None:
        return stages
    scale = p.sr.data.scale
    full = to_dict(p.sr)
    # The PSNR phase does not depend on GAN-phase settings: changing those must not retrain it.
    psnr_params = {k: v for k, v in full.items() if k not in ("gan", "fs")}
    psnr_params["model"] = {
        k: v for k, v in full["model"].items() if k not in ("discriminator", "d_features", "d_layers")
    }
    stages.append(Stage("sr_psnr", 1, {"config": psnr_params}, {}, ("pairs",), run_sr(p.sr, "psnr"), "L1"))
    stages.append(
        Stage(
            "sr_gan",
            1,
            {"config": full},
            {},
            ("pairs", "sr_psnr"),
            run_sr(p.sr, "gan"),
            _gan_losses(p.sr),
            weights=sr_weights(p.sr, "gan"),
        )
    )
    if p.alphas:
        stages.append(
            Stage("interpolate", 1, {"alphas": list(p.alphas)}, {}, ("sr_psnr", "sr_gan"), run_interpolate(p.alphas))
        )
    stages += baseline_stages(p, full)
    real_pairs = {}
    if "test_pairs" in p.inputs:
        real_pairs = {"real_pairs_lr": p.inputs["test_pairs"] / "lr", "real_pairs_hr": p.inputs["test_pairs"] / "hr"}
    held_out = "real_lr" in p.inputs and not same_domain and degrade_setting(d, "val_fraction", 0) > 0
    if has_test or real_pairs or held_out:
        ups = (("test_pairs",) if has_test else ()) + ("sr_psnr", "sr_gan") + (("interpolate",) if p.alphas else ())
        ups += tuple(BASELINE + k for k in p.baselines) + (("degrade",) if held_out else ())
        up_raw = {
            **({"real_lr": p.inputs["real_lr"]} if held_out else {}),
            **({"real_pairs_lr": real_pairs["real_pairs_lr"]} if real_pairs else {}),
        }
        stages.append(
            Stage(
                "upscale",
                3,
                {"tile": p.tile, "scale": scale, "max_held_out": MAX_HELD_OUT},
                up_raw,
                ups,
                run_upscale(p.tile, scale),
            )
        )
        if p.eval:
            eval_raw = {
                **({"real_lr": p.inputs["real_lr"]} if held_out else {}),
                **({"real_pairs_hr": real_pairs["real_pairs_hr"]} if real_pairs else {}),
            }
            deps = ("degrade",) + (("test_pairs",) if has_test else ("pairs",)) + ("upscale",)
            stages.append(
                Stage(
                    "eval",
                    3,  # 3: the realism advice reads the pairs.json
                    {"scale": scale, "fid": p.fid},
                    eval_raw,
                    deps,
                    run_eval(scale, p.fid),
                    weights=("alexnet",) + (("inception",) if p.fid and held_out else ()),
                )
            )
    return stages


def baseline_stages(p: Pipeline, sr_config: dict) -> list[Stage]:
    """Per `[baseline] kinds` entry: its pairs of the training HR, then the SR recipe (both phases) on them.

    The pairs stage's key holds only what changes those pairs (bicubic: scale and cleanup; blind: also
    the draws and the seed), so editing the blind seed retrains the blind baseline alone, and editing
    the SR recipe retrains every baseline without remaking their pairs.
    """
    scale = p.sr.data.scale
    out = []
    for kind in p.baselines:
        params = {"scale": scale, "cleanup_factor": p.cleanup_factor}
        if kind == "blind":
            params |= {"draws": p.blind_draws, "seed": p.blind_seed}
            fn = run_blind_pairs("pairs_hr", scale, p.cleanup_factor, p.blind_draws, p.blind_seed)
        else:
            fn = run_bicubic_pairs("pairs_hr", scale, p.cleanup_factor)
        what = {"bicubic": "bicubic pairs", "blind": "blind-degradation pairs (Real-ESRGAN)"}[kind]
        out.append(Stage(f"{kind}_pairs", 1, params, {"pairs_hr": p.inputs["pairs_hr"]}, (), fn, what))
        out.append(
            Stage(
                BASELINE + kind,
                1,
                {"config": sr_config},
                {},
                (f"{kind}_pairs",),
                run_sr(p.sr, "both", f"{kind}_pairs"),
                f"the sr recipe on {what}: L1, then " + _gan_losses(p.sr),
                weights=sr_weights(p.sr, "gan"),
            )
        )
    return out


def _gan_losses(cfg) -> str:
    g = cfg.gan
    parts = [f"L1 x{g.w_pixel:g}" + (" (low-pass)" if cfg.fs.enabled else "")]
    if g.perceptual != "none" and g.w_perceptual > 0:
        parts.append(f"VGG19 conv5_4 x{g.w_perceptual:g}")
    if g.w_adv > 0:
        parts.append(f"RaGAN x{g.w_adv:g}")
    return ", ".join(parts)
