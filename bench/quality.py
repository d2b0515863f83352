"""Does SR trained on srpipe's pairs beat SR trained on bicubic pairs on the target domain's real images?

Ground-truth comparisons with the same SR recipe and budget on three pair sets:

- ``bicubic``: HR set A with its bicubic x4 downscale (what most SR models are trained on);
- ``srpipe``: A degraded by srpipe's learned model (DSGAN + the estimated JPEG stage), which only
  ever saw set C's degraded copies, unpaired with A;
- ``true``: A degraded by the true degradation (the upper bound for this SR recipe).

Each SR model upscales the degraded LR of the test set T; PSNR-Y / SSIM-Y (BasicSR convention, border
of 4 cropped) and LPIPS (when the AlexNet weights resolve) are computed against T's HR.
Gap closure = (srpipe - bicubic) / (true - bicubic) in PSNR-Y. The realism columns are the
`eval-degradation` statistics of each training LR set against the held-out real LR (T's degraded LR):
noise sigma in flat regions and the JPEG 8x8 grid strength, as absolute distances to real.

Degradations (each applied to the HR photo, giving an LR photo of 1/4 its size):

- ``noise``: FSSR's DF2K "sensor noise" corruption (AIM 2019 RWSR track 1): bicubic x4 downscale,
  then white Gaussian noise of sigma 8 levels per pixel and channel *on the LR*, then 8-bit rounding.
  Stored as PNG.
- ``jpeg``: FSSR's DF2K "compression" corruption: bicubic x4 downscale, 8-bit rounding, then JPEG
  quality 30 (libjpeg through Pillow, 4:2:0 chroma) *on the LR*. Stored as the JPEG file itself.
- ``camera``: a camera of our own design. Optics: Gaussian lens PSF (sigma 1.2-1.8 HR px) in linear
  light. Sensor: x4 pixel integration (box), RGGB Bayer mosaic, Poisson-Gaussian noise (variance
  a*x + b with a = 4e-3, b = 1e-5 in linear [0, 1]). Processing: bilinear demosaic, sRGB gamma,
  unsharp mask (amount 0.6). Compression: JPEG quality 70-90 per photo. Stored as the JPEG file.
- ``realsr``: a real one: RealSR (NTIRE 2019) camera pairs, whose LR is registered at the HR's pixel
  size; the LR side is bicubic-downscaled x4 as its SOURCES.md says. Half of the pairs' LR is the
  real LR the learner sees, the other half is the test set; HR for training is A. No true arm.

Sets: `hr/train` (92 photos) is shuffled with a fixed seed and split into disjoint A, C and T.

    python bench/quality.py                      # CPU mode (about 40 minutes on 2 cores)
    python bench/quality.py --mode gpu           # paper-size networks and budgets
    python bench/quality.py --only noise,camera  # a subset; results of earlier runs are reused
    python bench/quality.py --ablation           # also: DSGAN without JPEG / JPEG after G / in the loop

Every trained model is cached under --work by a hash of what it depends on, so a rerun with one
setting changed retrains only what that setting changes.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import random
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from srpipe.config import RunOptions, build_config, to_dict
from srpipe.io.imageio import encode_png, list_images, read_image, to_uint, write_png
from srpipe.eval.metrics import psnr, ssim
from srpipe.eval.realism import RealismConfig, blockiness, noise_sigma
from srpipe.io.resize import bicubic_down, mod_crop

SCALE = 4
ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Mode:
    """Sizes and budgets of one benchmark mode."""

    n_a: int  # HR photos of the training pairs
    n_c: int  # photos whose degraded copies are the learner's real LR
    n_t: int  # test photos
    degrade_preset: str
    degrade_sets: tuple[str, ...]  # --set overrides of the DSGAN preset
    sr_preset: str
    sr_sets: tuple[str, ...]  # --set overrides of the ESRGAN preset (PSNR phase only is compared)
    device: str


MODES = {
    # 2-core CPU: tiny networks. SR budget measured 2026-12-05 (tiny RRDBNet, batch 8, HR patch 64,
    # lr 1e-3, one torch thread, PSNR-Y true - bicubic on T at 1000 / 2000 / 3000 / 4000 steps):
    # noise 0.37 / 0.62 / 0.68 / 0.82 dB, jpeg 0.19 / 0.37 / 0.39 / 0.47, camera 2.15 / 2.26 / 2.15 /
    # 2.38 (one run with lr halved at 3000, read at its checkpoints). 1 dB on noise and jpeg is out of reach of a budget that fits 90 minutes (16 SR trainings
    # at about 0.15-0.25 s per step); 2000 steps doubles the jpeg gap of 1000 and fits.
    "cpu": Mode(
        n_a=40,
        n_c=32,
        n_t=20,
        degrade_preset="tiny",
        degrade_sets=(),
        sr_preset="tiny",
        sr_sets=("psnr.iters=2000", "psnr.milestones=[1500]"),
        device="cpu",
    ),
    "gpu": Mode(
        n_a=40,
        n_c=32,
        n_t=20,
        degrade_preset="paper",
        degrade_sets=("optim.iters=20000",),
        sr_preset="paper",
        sr_sets=("psnr.iters=50000", "psnr.milestones=[30000]", "data.hr_patch=128"),
        device="cuda",
    ),
    # Seconds: checks that every step runs (numbers mean nothing).
    "smoke": Mode(
        n_a=6,
        n_c=6,
        n_t=3,
        degrade_preset="tiny",
        degrade_sets=("optim.iters=10",),
        sr_preset="tiny",
        sr_sets=("psnr.iters=10", "psnr.milestones=[]"),
        device="cpu",
    ),
}


# ------------------------------------------------------------------------------------------ degradations


def _jpeg_bytes(rgb: np.ndarray, quality: int) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="JPEG", quality=quality, subsampling=2)  # 4:2:0, libjpeg's default
    return buf.getvalue()


def _srgb_to_linear(x: np.ndarray) -> np.ndarray:
    return np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4)


def _linear_to_srgb(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0, 1)
    return np.where(x <= 0.0031308, 12.92 * x, 1.055 * x ** (1 / 2.4) - 0.055)


def degrade_noise(hr: torch.Tensor, rng: np.random.Generator) -> tuple[bytes, str]:
    lq = bicubic_down(hr[None], SCALE)[0].numpy()
    lq = lq + rng.normal(0, 8 / 255, lq.shape)
    return encode_png(to_uint(torch.from_numpy(lq).float())), "png"


def degrade_jpeg(hr: torch.Tensor, rng: np.random.Generator) -> tuple[bytes, str]:
    return _jpeg_bytes(to_uint(bicubic_down(hr[None], SCALE)[0]), 30), "jpg"


def degrade_camera(hr: torch.Tensor, rng: np.random.Generator) -> tuple[bytes, str]:
    import cv2

    lin = _srgb_to_linear(hr.permute(1, 2, 0).double().numpy())
    sigma = rng.uniform(1.2, 1.8)
    lin = cv2.GaussianBlur(lin, (0, 0), sigma, borderType=cv2.BORDER_REFLECT)
    h, w = lin.shape[0] // SCALE, lin.shape[1] // SCALE
    lin = lin[: h * SCALE, : w * SCALE].reshape(h, SCALE, w, SCALE, 3).mean(axis=(1, 3))  # pixel integration
    mosaic = np.empty((h, w))
    mosaic[0::2, 0::2] = lin[0::2, 0::2, 0]  # RGGB
    mosaic[0::2, 1::2] = lin[0::2, 1::2, 1]
    mosaic[1::2, 0::2] = lin[1::2, 0::2, 1]
    mosaic[1::2, 1::2] = lin[1::2, 1::2, 2]
    mosaic = mosaic + rng.normal(0, 1, mosaic.shape) * np.sqrt(4e-3 * np.clip(mosaic, 0, 1) + 1e-5)
    raw = np.clip(mosaic * 65535, 0, 65535).astype(np.uint16)
    rgb = cv2.cvtColor(raw, cv2.COLOR_BayerRG2RGB).astype(np.float64) / 65535  # OpenCV's Bayer naming is shifted
    srgb = _linear_to_srgb(rgb)
    blur = cv2.GaussianBlur(srgb, (0, 0), 1.0)
    srgb = srgb + 0.6 * (srgb - blur)
    rgb8 = (np.clip(srgb, 0, 1) * 255).round().astype(np.uint8)
    return _jpeg_bytes(rgb8, int(rng.integers(70, 91))), "jpg"


DEGRADATIONS = {"noise": degrade_noise, "jpeg": degrade_jpeg, "camera": degrade_camera}


def _seed_of(name: str, salt: str) -> int:
    return int.from_bytes(hashlib.sha256(f"{salt}/{name}".encode()).digest()[:8], "little")


def write_degraded(kind: str, hr_paths: list[Path], out: Path) -> None:
    """OUT/NAME.{png,jpg}: the true degradation of each HR photo (seeded by its name)."""
    out.mkdir(parents=True, exist_ok=True)
    for p in hr_paths:
        hr, _ = read_image(p)
        hr = mod_crop(hr, SCALE)
        data, ext = DEGRADATIONS[kind](hr, np.random.default_rng(_seed_of(p.stem, kind)))
        (out / f"{p.stem}.{ext}").write_bytes(data)


def write_pairs(hr_paths: list[Path], lq_dir: Path | None, out: Path) -> Path:
    """A pairs folder (hr/, lr/ as sr-train reads it): LR from `lq_dir` by stem, or bicubic when None."""
    lq_by_stem = {q.stem: q for q in lq_dir.iterdir()} if lq_dir is not None else {}
    for p in hr_paths:
        hr, _ = read_image(p)
        hr = mod_crop(hr, SCALE)
        write_png(out / "hr" / f"{p.stem}.png", hr)
        if lq_dir is None:
            write_png(out / "lr" / f"{p.stem}.png", bicubic_down(hr[None], SCALE)[0])
        else:
            write_png(out / "lr" / f"{p.stem}.png", read_image(lq_by_stem[p.stem])[0])
    return out


# ------------------------------------------------------------------------------------------ cached steps


def _digest(*parts) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _folder_digest(folder: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            h.update(str(p.relative_to(folder)).encode())
            h.update(hashlib.sha256(p.read_bytes()).digest())
    return h.hexdigest()[:16]


def cached(work: Path, what: str, key: str, build) -> Path:
    """Run `build(tmp_dir)` once per (what, key); the folder counts only once its DONE marker exists."""
    out = work / what / key
    if (out / "DONE").exists():
        return out
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    build(out)
    (out / "DONE").write_text(f"{time.perf_counter() - t0:.1f}\n")
    return out


def seconds(folder: Path) -> float:
    return float((folder / "DONE").read_text())


def train_sr(work: Path, mode: Mode, pairs: Path) -> Path:
    from srpipe.upscale import train as esrgan
    from srpipe.upscale.config import PRESETS, UpscaleConfig

    cfg = build_config(UpscaleConfig, preset=PRESETS[mode.sr_preset], sets=list(mode.sr_sets))
    key = _digest("sr", to_dict(cfg), _folder_digest(pairs))  # the resolved config: a preset edit retrains
    run = RunOptions(device=mode.device)
    return cached(work, "sr", key, lambda out: esrgan.train(cfg, pairs=pairs, out_dir=out, run=run, phase="psnr"))


@dataclass(frozen=True)
class Variant:
    """How srpipe learns and applies the degradation (the JPEG ablation varies `jpeg` and `in_loop`)."""

    name: str
    jpeg: str = "auto"  # make-pairs --jpeg
    degrade_sets: tuple[str, ...] = ()  # extra --set overrides of DSGAN


VARIANTS = {
    "srpipe": Variant("srpipe"),
    "no-jpeg": Variant("no-jpeg", jpeg="off", degrade_sets=("jpeg.in_loop=false",)),
    "jpeg-after-G": Variant("jpeg-after-G", jpeg="auto", degrade_sets=("jpeg.in_loop=false",)),
    "jpeg-in-loop": Variant("jpeg-in-loop", jpeg="auto", degrade_sets=("jpeg.in_loop=true",)),
}


def srpipe_pairs(work: Path, mode: Mode, variant: Variant, a_dir: Path, real_lr: Path) -> tuple[Path, Path]:
    """(degrade-train run folder, pairs folder) for one variant."""
    from srpipe.degrade import train as dsgan
    from srpipe.degrade.config import PRESETS, DegradeConfig
    from srpipe.degrade.pairs import make_pairs

    sets = [*mode.degrade_sets, *variant.degrade_sets]
    cfg = build_config(DegradeConfig, preset=PRESETS[mode.degrade_preset], sets=sets)
    run = RunOptions(device=mode.device)
    key = _digest("dsgan", to_dict(cfg), _folder_digest(a_dir), _folder_digest(real_lr))
    model = cached(work, "dsgan", key, lambda out: dsgan.train(cfg, hr_dir=a_dir, lr_dir=real_lr, out_dir=out, run=run))
    pkey = _digest("pairs", key, variant.jpeg)
    pairs = cached(
        work,
        "pairs",
        pkey,
        lambda out: make_pairs(model=model, hr_dir=a_dir, out_dir=out, device=mode.device, jpeg=variant.jpeg),
    )
    return model, pairs


# ------------------------------------------------------------------------------------------ evaluation


@dataclass
class Scores:
    psnr_y: float
    ssim_y: float
    lpips: float | None
    seconds: float


def evaluate_sr(model_dir: Path, test_lq: list[Path], test_gt: list[Path], device: str, lpips) -> Scores:
    from srpipe.upscale import interop
    from srpipe.upscale.infer import upscale_tensor

    net, _, _ = interop.load_generator(model_dir / "psnr.safetensors")
    net = net.eval().to(device)
    p, s, lp = [], [], []
    for lq_path, gt_path in zip(test_lq, test_gt, strict=True):
        lq, _ = read_image(lq_path)
        gt, _ = read_image(gt_path)
        with torch.no_grad():
            sr = upscale_tensor(net, lq, tile=0, device=device).clamp(0, 1)
        sr = (sr * 255).round() / 255  # what a user gets: an 8-bit file
        gt = gt[:, : sr.shape[1], : sr.shape[2]]
        p.append(float(psnr(sr, gt, crop_border=SCALE)))
        s.append(float(ssim(sr, gt, crop_border=SCALE)))
        if lpips is not None:
            lp.append(float(lpips(sr.to(device), gt.to(device))))
    return Scores(float(np.mean(p)), float(np.mean(s)), float(np.mean(lp)) if lp else None, seconds(model_dir))


def lr_stats(paths: list[Path]) -> dict:
    """An LR set's noise sigma in flat regions (per channel, median over images, 8-bit levels) and
    JPEG 8x8 grid strength (median over images), as `eval-degradation` computes them."""
    cfg = RealismConfig()
    noise, grid = [], []
    for p in paths:
        img, _ = read_image(p)
        noise.append(noise_sigma(img, cfg).numpy() * 255)
        grid.append(float(blockiness(img)))
    rgb = np.median(np.stack(noise), axis=0)
    return {
        "noise_rgb": [round(float(v), 3) for v in rgb],
        "noise": float(rgb.mean()),
        "grid": float(np.nanmedian(grid)),
    }


def lr_distances(st: dict, real: dict) -> dict:
    """Distances to the real LR: mean absolute difference over R, G, B (noise), absolute (grid)."""
    return {
        "noise_distance": float(np.abs(np.array(st["noise_rgb"]) - np.array(real["noise_rgb"])).mean()),
        "grid_distance": abs(st["grid"] - real["grid"]),
    }


def _lpips_or_none(device: str):
    from srpipe.eval.metrics import LPIPS
    from srpipe.engine.weights import MissingWeightsError

    try:
        return LPIPS().to(device)
    except MissingWeightsError as e:
        print(f"note: LPIPS not reported ({str(e).splitlines()[0]})", file=sys.stderr)
        return None


# ------------------------------------------------------------------------------------------ main


@dataclass
class Result:
    degradation: str
    arms: dict[str, dict] = field(default_factory=dict)  # arm -> scores and LR stats
    real_lr: dict = field(default_factory=dict)
    jpeg_estimate: dict | None = None
    closure: float | None = None


def split_photos(data: Path, mode: Mode, seed: int = 0) -> tuple[list[Path], list[Path], list[Path]]:
    photos = list_images(data / "hr" / "train")
    if len(photos) < mode.n_a + mode.n_c + mode.n_t:
        raise SystemExit(f"{data}/hr/train has {len(photos)} photos; mode needs {mode.n_a + mode.n_c + mode.n_t}")
    random.Random(seed).shuffle(photos)
    a = photos[: mode.n_a]
    c = photos[mode.n_a : mode.n_a + mode.n_c]
    t = photos[mode.n_a + mode.n_c : mode.n_a + mode.n_c + mode.n_t]
    return a, c, t


def _link_folder(paths: list[Path], out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    for p in paths:
        q = out / p.name
        if not q.exists():
            q.symlink_to(p.resolve())
    return out


def realsr_sets(data: Path, work: Path, n_test: int) -> tuple[Path, list[Path], list[Path]]:
    """(real-LR folder for the learner, test LR paths, test HR paths) from RealSR_NTIRE19."""
    root = data / "real_pairs" / "RealSR_NTIRE19"
    names = sorted(p.stem for p in list_images(root / "lr"))
    random.Random(1).shuffle(names)
    learn, test = names[: len(names) - n_test], names[len(names) - n_test :]
    out = work / "realsr"

    def build(d: Path) -> None:
        for sub, chosen in (("real_lr", learn), ("test_lr", test)):
            for n in chosen:
                lq, _ = read_image(root / "lr" / f"{n}.png")
                write_png(d / sub / f"{n}.png", bicubic_down(mod_crop(lq, SCALE)[None], SCALE)[0])
        for n in test:
            gt, _ = read_image(root / "hr" / f"{n}.png")
            write_png(d / "test_hr" / f"{n}.png", mod_crop(gt, SCALE))

    d = cached(out, "sets", _digest("realsr", learn, test), build)
    return d / "real_lr", sorted((d / "test_lr").iterdir()), sorted((d / "test_hr").iterdir())


def run_degradation(
    kind: str,
    mode: Mode,
    data: Path,
    work: Path,
    variants: list[str],
    lpips,
    lr_only: bool = False,
    arms_wanted: tuple[str, ...] = ("bicubic", "srpipe", "true"),
) -> Result:
    a, c, t = split_photos(data, mode)
    a_dir = _link_folder(a, work / "A")
    res = Result(kind)
    if kind == "realsr":
        real_lr, test_lq, test_gt = realsr_sets(data, work, n_test=8)
        true_pairs = None
    else:
        sets = cached(
            work,
            f"true-{kind}",
            _digest(kind, [p.name for p in a + c + t]),
            lambda d: (
                write_degraded(kind, c, d / "real_lr"),
                write_degraded(kind, t, d / "test_lr"),
                write_degraded(kind, a, d / "train_lr"),
                [write_png(d / "test_hr" / f"{p.stem}.png", mod_crop(read_image(p)[0], SCALE)) for p in t],
            ),
        )
        real_lr = sets / "real_lr"
        test_lq, test_gt = sorted((sets / "test_lr").iterdir()), sorted((sets / "test_hr").iterdir())
        true_pairs = cached(
            work,
            "pairs",
            _digest("true", kind, _folder_digest(sets / "train_lr"), len(a)),
            lambda d: write_pairs(a, sets / "train_lr", d),
        )
    bic_pairs = cached(work, "pairs", _digest("bicubic", [p.name for p in a]), lambda d: write_pairs(a, None, d))

    res.real_lr = lr_stats(test_lq)
    arms: dict[str, Path] = {"bicubic": bic_pairs}
    from srpipe.io.jpeg import estimate_folder

    if estimate_folder(list_images(real_lr)).kind == "none":  # no JPEG stage: the ablation arms equal srpipe's
        variants = [v for v in variants if v == "srpipe"]
    for v in variants if "srpipe" in arms_wanted else []:
        model, pairs = srpipe_pairs(work, mode, VARIANTS[v], a_dir, real_lr)
        arms[v] = pairs
        if v == "srpipe" and (model / "jpeg.json").exists():
            res.jpeg_estimate = json.loads((model / "jpeg.json").read_text())
    if true_pairs is not None:
        arms["true"] = true_pairs
    for arm, pairs in arms.items():
        if arm not in arms_wanted and not (arm in VARIANTS and "srpipe" in arms_wanted):
            continue
        if lr_only:
            sc = Scores(float("nan"), float("nan"), None, 0.0)
        else:
            sr_dir = train_sr(work, mode, pairs)
            sc = evaluate_sr(sr_dir, test_lq, test_gt, mode.device, lpips)
        st = lr_stats(sorted((pairs / "lr").iterdir()))
        res.arms[arm] = {**sc.__dict__, **st, **lr_distances(st, res.real_lr)}
        print(
            f"  {kind:7s} {arm:13s} PSNR-Y {sc.psnr_y:6.2f}  SSIM-Y {sc.ssim_y:.4f}  "
            f"noise {st['noise']:.2f}  grid {st['grid']:.3f}",
            file=sys.stderr,
        )
    if {"true", "srpipe", "bicubic"} <= res.arms.keys():
        gap = res.arms["true"]["psnr_y"] - res.arms["bicubic"]["psnr_y"]
        res.closure = (res.arms["srpipe"]["psnr_y"] - res.arms["bicubic"]["psnr_y"]) / gap if gap > 0 else None
    return res


def table(results: list[Result]) -> str:
    lines = [
        "| degradation | pairs | PSNR-Y (dB) | SSIM-Y | LPIPS | gap closure | LR noise (real) | noise dist. "
        "| LR grid (real) | grid dist. |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        for arm, a in r.arms.items():
            closure = f"{r.closure:.2f}" if arm == "srpipe" and r.closure is not None else ""
            lp = f"{a['lpips']:.4f}" if a["lpips"] is not None else "n/a"
            lines.append(
                f"| {r.degradation} | {arm} | {a['psnr_y']:.2f} | {a['ssim_y']:.4f} | {lp} | {closure} "
                f"| {a['noise']:.2f} ({r.real_lr['noise']:.2f}) | {a['noise_distance']:.2f} "
                f"| {a['grid']:.3f} ({r.real_lr['grid']:.3f}) | {a['grid_distance']:.3f} |"
            )
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mode", choices=sorted(MODES), default="cpu")
    ap.add_argument(
        "--data",
        type=Path,
        default=ROOT.parent / "shared" / "data",
        help="the photo collection (hr/train, real_pairs/RealSR_NTIRE19)",
    )
    ap.add_argument(
        "--work",
        type=Path,
        default=ROOT / "bench" / "out" / "quality",
        help="cache of degraded sets, pairs and trained models",
    )
    ap.add_argument("--only", default="noise,jpeg,camera,realsr", help="comma-separated degradations")
    ap.add_argument("--ablation", action="store_true", help="also the JPEG ablation variants")
    ap.add_argument(
        "--lr-only",
        action="store_true",
        help="only the LR statistics (no SR training): for tuning the degradation model",
    )
    ap.add_argument(
        "--set",
        dest="sets",
        action="append",
        default=[],
        help="extra DSGAN override for this run, e.g. --set loss.w_adv=0.01 (repeatable)",
    )
    ap.add_argument("--arms", default="bicubic,srpipe,true", help="comma-separated arms to train and report")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    ap.add_argument("--json", type=Path, help="write the results here (default: WORK/MODE/results.json)")
    args = ap.parse_args(argv)
    mode = MODES[args.mode]
    if args.sets:
        mode = replace(mode, degrade_sets=(*mode.degrade_sets, *args.sets))
    if mode.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--mode gpu needs CUDA")
    if args.threads:
        torch.set_num_threads(args.threads)
    work = args.work / args.mode
    lpips = _lpips_or_none(mode.device)
    t0 = time.perf_counter()
    device = torch.cuda.get_device_name() if mode.device == "cuda" else f"CPU ({torch.get_num_threads()} threads)"
    out = args.json or work / "results.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    arms = tuple(args.arms.split(","))
    # The main arms of every degradation first, then the ablation arms (the main ones come from the
    # cache): a run cut short still has the headline table. Results are written after each step.
    passes = [["srpipe"]] + ([["srpipe", "no-jpeg", "jpeg-after-G", "jpeg-in-loop"]] if args.ablation else [])
    results: dict[str, Result] = {}
    for variants in passes:
        for kind in args.only.split(","):
            print(f"[{time.perf_counter() - t0:6.0f} s] {kind} ({', '.join(variants)})", file=sys.stderr)
            results[kind] = run_degradation(kind, mode, args.data, work, variants, lpips, args.lr_only, arms)
            elapsed = time.perf_counter() - t0
            meta = {
                "date": time.strftime("%Y-%m-%d"),
                "mode": args.mode,
                "device": device,
                "torch": torch.__version__,
                "seconds": round(elapsed, 1),
                "mode_settings": mode.__dict__,
            }
            out.write_text(
                json.dumps({"meta": meta, "results": [r.__dict__ for r in results.values()]}, indent=1, default=str)
            )
    results = list(results.values())
    print(f"quality benchmark, {args.mode} mode, {device}, {meta['date']}, {elapsed / 60:.1f} min")
    print(table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
