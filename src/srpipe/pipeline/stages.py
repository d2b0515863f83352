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
of `Stage.raw`, the outputs of `Stage.deps` and the identity of each file in `Stage.weights`. What a
training stage's params, pretrained files, losses and file names are is its library's contract
(`srpipe.degrade.contract`, `srpipe.upscale.contract`): this module only wires them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from srpipe.config import RunOptions, resolve_device
from srpipe.degrade import contract as degrade_contract
from srpipe.io.pair_folder import GT_DIR, LQ_DIR
from srpipe.pipeline.baseline_pairs import run_bicubic_pairs, run_blind_pairs
from srpipe.pipeline.layout import (
    BASELINE,
    BICUBIC,
    HELD_OUT,
    METRICS,
    REAL,
    REAL_PAIRS,
    baseline_models,
    real_set_models,
)
from srpipe.pipeline.spec import Pipeline
from srpipe.upscale import contract as sr_contract

MAX_HELD_OUT = 8  # held-out real LR images upscaled by every model (bounded time on a CPU)
EVAL_WEIGHTS = ("alexnet",)  # eval's LPIPS; Inception too for FID/KID rows of held-out real LR (`fid`)


@dataclass(frozen=True)
class Context:
    out: Path  # the stage's cache entry (results go here, nowhere else)
    inputs: dict[str, Path]  # raw input folders and upstream entries, by name
    run: RunOptions
    key: str = ""  # the stage key: the identity its run folder resumes on


@dataclass(frozen=True, kw_only=True)
class Stage:
    name: str
    version: int  # bumped by hand when the stage's results change
    params: dict  # result-changing parameters only (they enter the key)
    fn: Callable[[Context], dict]  # runs the stage, returns a summary for the manifest
    raw: dict[str, Path] = field(default_factory=dict)  # raw input folders (fingerprinted by content)
    deps: tuple[str, ...] = ()  # upstream stages (fingerprinted by their completed outputs)
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

        real_lr = None if cfg.data.same_domain else ctx.inputs["real_lr"]
        train(cfg, hr_dir=ctx.inputs["hr"], real_lr_dir=real_lr, out_dir=ctx.out, run=_stage_run(ctx))
        return {"method": method, "active_losses": degrade_contract.loss_terms(cfg)}

    return fn


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

        init = ctx.inputs["sr_psnr"] / sr_contract.weights_file("psnr") if phase == "gan" else None
        paths = train(cfg, pairs=ctx.inputs[pairs], out_dir=ctx.out, run=_stage_run(ctx), phase=phase, init=init)
        return {"weights": {k: str(Path(v).name) for k, v in paths.items()}}

    return fn


def run_interpolate(alphas: tuple[float, ...]):
    def fn(ctx: Context) -> dict:
        from srpipe.upscale.interpolate import interpolate_files

        files = interpolate_files(
            ctx.inputs["sr_psnr"] / sr_contract.weights_file("psnr"),
            ctx.inputs["sr_gan"] / sr_contract.weights_file("gan"),
            list(alphas),
            ctx.out,
            sweep=True,
        )
        return {"models": [f.name for f in files]}

    return fn


def models_of(inputs: dict[str, Path]) -> dict[str, Path]:
    """Model name -> weights file, for every model the upscale stage runs."""
    models = {phase: inputs[f"sr_{phase}"] / sr_contract.weights_file(phase) for phase in sr_contract.PHASES}
    if "interpolate" in inputs:
        for f in sorted(inputs["interpolate"].glob(sr_contract.ALPHA_GLOB)):
            models[f.stem] = f
    for stage in sorted(k for k in inputs if k.startswith(BASELINE)):
        for model, phase in zip(baseline_models(stage[len(BASELINE) :]), sr_contract.PHASES):
            models[model] = inputs[stage] / sr_contract.weights_file(phase)
    return models


def held_out_real(inputs: dict[str, Path], limit: int | None = MAX_HELD_OUT) -> list[Path]:
    """The real LR images degrade held out (never seen by its discriminator), the first `limit` by name."""
    import json

    if "real_lr" not in inputs or "degrade" not in inputs:
        return []
    split = json.loads((inputs["degrade"] / degrade_contract.SPLIT).read_text())
    return [inputs["real_lr"] / n for n in sorted(split["held_out"])[:limit]]


def run_upscale(tile: int, scale: int):
    def fn(ctx: Context) -> dict:
        import shutil

        models = models_of(ctx.inputs)
        real_models = {name: models[name] for name in real_set_models(models)}
        kw = dict(scale=scale, tile=tile, device=ctx.run.device)
        sets = []
        if "test_pairs" in ctx.inputs:  # made by srpipe's generator: fit to the learned degradation
            upscale_set(ctx.inputs["test_pairs"] / LQ_DIR, ctx.out, models, **kw)
            sets.append("test_pairs")
        held = held_out_real(ctx.inputs)
        if held:
            real_lr_dir = ctx.out / REAL / HELD_OUT / LQ_DIR
            real_lr_dir.mkdir(parents=True, exist_ok=True)
            for f in held:  # the inputs themselves, for the report's side-by-side crops
                shutil.copyfile(f, real_lr_dir / f.name)
            upscale_set(real_lr_dir, ctx.out / REAL / HELD_OUT, real_models, **kw)
            sets.append(HELD_OUT)
        if "real_pairs_lr" in ctx.inputs:
            upscale_set(ctx.inputs["real_pairs_lr"], ctx.out / REAL / REAL_PAIRS, real_models, **kw)
            sets.append(REAL_PAIRS)
        return {"models": [BICUBIC, *models], "sets": sets}

    return fn


def upscale_set(lq_dir: Path, dest: Path, models: dict[str, Path], *, scale: int, tile: int, device: str) -> None:
    """One LR set upscaled into dest/<model>/: bicubic, the baseline every model has to beat, then each model."""
    from functools import partial

    from srpipe.engine.folders import map_folder
    from srpipe.upscale.infer import upscale

    map_folder(lq_dir, partial(_bicubic_up, dest=dest / BICUBIC, scale=scale), what="LR")
    for name, model in models.items():
        upscale(model, lq_dir, dest / name, tile=tile, device=device)


def _bicubic_up(p: Path, *, dest: Path, scale: int) -> None:
    from srpipe.io.imageio import read_image, write_png
    from srpipe.io.resize import bicubic_up

    img, info = read_image(p)
    write_png(dest / f"{p.stem}.png", bicubic_up(img[None], scale)[0], like=info)


def model_folders(folder: Path) -> list[Path]:
    """The per-model output folders of an upscale entry (or of one of its real LR sets)."""
    return sorted(p for p in folder.iterdir() if p.is_dir() and p.name not in (REAL, LQ_DIR))


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
            results = score(up, ctx.inputs["test_pairs"] / GT_DIR)
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
        write_json(ctx.out / METRICS, {**out, "per_image": per_image})
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
        list_images(pairs / LQ_DIR),
        list_images(pairs / GT_DIR),
        scale,
        cfg=RealismConfig(inception=fid),
        weights_dir=ctx.run.weights_dir or None,
        device=resolve_device(ctx.run.device),
        pairs=pairs_manifest(pairs / LQ_DIR),  # what make-pairs applied: the advice suggests only the rest
    )
    return {**report, "synthetic_from": source}


# ---- the stages of a pipeline file


def build_stages(p: Pipeline) -> list[Stage]:
    """The stages `p` enables, in run order."""
    stages = degrade_stages(p)
    if p.sr is None:
        return stages
    return stages + sr_stages(p) + baseline_stages(p) + evaluation_stages(p)


def degrade_stages(p: Pipeline) -> list[Stage]:
    """degrade, then the training pairs and (with [inputs] test_hr) the test pairs it makes."""
    d = p.degrade
    raw = {"hr": p.inputs["hr"]} | ({} if d.data.same_domain else {"real_lr": p.inputs["real_lr"]})
    stages = [
        Stage(
            name="degrade",
            version=1,
            params={"method": p.method, "config": degrade_contract.key_config(d)},
            raw=raw,
            fn=run_degrade(d, p.method),
            describe=", ".join([p.method, *degrade_contract.loss_terms(d)]),
            weights=degrade_contract.pretrained(d),
        )
    ]
    for name, hr in (("pairs", "pairs_hr"), ("test_pairs", "test_hr")):
        if hr in p.inputs:
            stages.append(
                Stage(
                    name=name,
                    version=1,
                    params={"cleanup_factor": p.cleanup_factor, "jpeg": p.jpeg},
                    raw={hr: p.inputs[hr]},
                    deps=("degrade",),
                    fn=run_pairs(hr, p.cleanup_factor, p.jpeg),
                )
            )
    return stages


def sr_stages(p: Pipeline) -> list[Stage]:
    """The SR recipe's two phases on degrade's pairs, then the interpolated models.

    Each phase's key holds the config fields that phase reads (`srpipe.upscale.contract.key_config`):
    editing the GAN phase's settings does not retrain the PSNR phase.
    """
    stages = [
        Stage(
            name=f"sr_{phase}",
            version=1,
            params={"config": sr_contract.key_config(p.sr, phase)},
            deps=("pairs",) if phase == "psnr" else ("pairs", "sr_psnr"),
            fn=run_sr(p.sr, phase),
            describe=", ".join(sr_contract.loss_terms(p.sr, phase)),
            weights=sr_contract.pretrained(p.sr, phase),
        )
        for phase in sr_contract.PHASES
    ]
    if p.alphas:
        stages.append(
            Stage(
                name="interpolate",
                version=1,
                params={"alphas": list(p.alphas)},
                deps=("sr_psnr", "sr_gan"),
                fn=run_interpolate(p.alphas),
            )
        )
    return stages


def baseline_stages(p: Pipeline) -> list[Stage]:
    """Per `[baseline] kinds` entry: its pairs of the training HR, then the SR recipe (both phases) on them.

    The pairs stage's key holds only what changes those pairs (bicubic: scale and cleanup; blind: also
    the draws and the seed), so editing the blind seed retrains the blind baseline alone, and editing
    the SR recipe retrains every baseline without remaking their pairs.
    """
    scale = p.sr.data.scale
    phases = sr_contract.PHASES
    losses = ", then ".join(", ".join(sr_contract.loss_terms(p.sr, phase)) for phase in phases)
    weights = tuple(dict.fromkeys(w for phase in phases for w in sr_contract.pretrained(p.sr, phase)))
    out = []
    for kind in p.baselines:
        params = {"scale": scale, "cleanup_factor": p.cleanup_factor}
        if kind == "blind":
            params |= {"draws": p.blind_draws, "seed": p.blind_seed}
            fn = run_blind_pairs("pairs_hr", scale, p.cleanup_factor, p.blind_draws, p.blind_seed)
        else:
            fn = run_bicubic_pairs("pairs_hr", scale, p.cleanup_factor)
        what = {"bicubic": "bicubic pairs", "blind": "blind-degradation pairs (Real-ESRGAN)"}[kind]
        raw = {"pairs_hr": p.inputs["pairs_hr"]}
        out.append(Stage(name=f"{kind}_pairs", version=1, params=params, raw=raw, fn=fn, describe=what))
        out.append(
            Stage(
                name=BASELINE + kind,
                version=1,
                params={"config": sr_contract.key_config(p.sr, "gan")},  # both phases: all of the config
                deps=(f"{kind}_pairs",),
                fn=run_sr(p.sr, "both", f"{kind}_pairs"),
                describe=f"the sr recipe on {what}: {losses}",
                weights=weights,
            )
        )
    return out


def evaluation_stages(p: Pipeline) -> list[Stage]:
    """upscale (every model on the test pairs, the held-out real LR and [inputs] test_pairs), then eval."""
    has_test = "test_hr" in p.inputs
    held_out = "real_lr" in p.inputs and degrade_contract.holds_out_real(p.degrade)
    real_pairs = p.inputs.get("test_pairs")
    if not (has_test or real_pairs or held_out):
        return []
    scale = p.sr.data.scale
    real = {"real_lr": p.inputs["real_lr"]} if held_out else {}
    ups = (("test_pairs",) if has_test else ()) + ("sr_psnr", "sr_gan") + (("interpolate",) if p.alphas else ())
    ups += tuple(BASELINE + k for k in p.baselines) + (("degrade",) if held_out else ())
    stages = [
        Stage(
            name="upscale",
            version=3,
            params={"tile": p.tile, "scale": scale, "max_held_out": MAX_HELD_OUT},
            raw=real | ({"real_pairs_lr": real_pairs / LQ_DIR} if real_pairs else {}),
            deps=ups,
            fn=run_upscale(p.tile, scale),
        )
    ]
    if p.eval:
        stages.append(
            Stage(
                name="eval",
                version=3,  # 3: the realism advice reads the pairs.json
                params={"scale": scale, "fid": p.fid},
                raw=real | ({"real_pairs_hr": real_pairs / GT_DIR} if real_pairs else {}),
                deps=("degrade", "test_pairs" if has_test else "pairs", "upscale"),
                fn=run_eval(scale, p.fid),
                weights=EVAL_WEIGHTS + (("inception",) if p.fid and held_out else ()),
            )
        )
    return stages
