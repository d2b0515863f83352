"""`srpipe eval-fid`, `srpipe eval` and `srpipe eval-degradation`."""

from __future__ import annotations

import contextlib
import json
import math

import click

from srpipe.cli.options import run_options


def _json_safe(v):
    """Non-finite floats become null: strict JSON (jq, JavaScript) has no inf/nan."""
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if isinstance(v, dict):
        return {k: _json_safe(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_json_safe(x) for x in v]
    return v


def _print_json(data: dict) -> None:
    from srpipe.cli.console import out

    out.print(json.dumps(_json_safe(data), indent=2), markup=False, highlight=False, soft_wrap=True)


def _fmt(v, digits: int = 4) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.{digits}f}" if math.isfinite(v) else str(v)
    return str(v)


@contextlib.contextmanager
def _progress(quiet: bool):
    """A progress callback `(label, done, total)` drawing bars on stderr (a no-op when quiet)."""
    if quiet:
        yield None
        return
    from rich.progress import Progress

    from srpipe.cli.console import err

    with Progress(console=err, transient=True) as prog:
        tasks: dict = {}

        def update(label, done, total):
            if label not in tasks:
                tasks[label] = prog.add_task(str(label), total=total)
            prog.update(tasks[label], completed=done, total=total)

        yield update


@click.command("eval-fid")
@click.argument("path_a", type=click.Path())
@click.argument("path_b", type=click.Path(), required=False)
@click.option(
    "--patches",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Crops per image (0: whole images, exactly as pytorch-fid).",
)
@click.option("--patch-size", type=click.IntRange(min=8), default=64, show_default=True, help="Crop side in pixels.")
@click.option(
    "--patch-mode",
    type=click.Choice(["random", "grid"]),
    default="random",
    show_default=True,
    help="Seeded random crop positions, or a non-overlapping grid (spread over the image).",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Random crops and KID subsets.")
@click.option(
    "--dims",
    type=click.Choice(["64", "192", "768", "2048"]),
    default="2048",
    show_default=True,
    help="Inception feature size (2048 = pool3, the FID standard).",
)
@click.option("--kid-subsets", type=click.IntRange(min=1), default=100, show_default=True)
@click.option("--kid-subset-size", type=click.IntRange(min=2), default=1000, show_default=True)
@click.option(
    "--save-stats",
    "save_stats",
    type=click.Path(dir_okay=False),
    default=None,
    help="Write PATH_A's mean/covariance as a pytorch-fid .npz (PATH_B may then be omitted).",
)
@click.option("--batch-size", type=click.IntRange(min=1), default=50, show_default=True)
@click.option(
    "--cache-dir",
    type=click.Path(file_okay=False),
    default=None,
    help="Feature cache folder (default: $SRPIPE_CACHE/features or ~/.cache/srpipe/features).",
)
@click.option("--no-cache", is_flag=True, help="Neither read nor write cached features.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output on stdout.")
@run_options
def eval_fid(
    path_a,
    path_b,
    patches,
    patch_size,
    patch_mode,
    seed,
    dims,
    kid_subsets,
    kid_subset_size,
    save_stats,
    batch_size,
    cache_dir,
    no_cache,
    as_json,
    device,
    weights_dir,
):
    """FID and KID between two image folders (either may be a pytorch-fid .npz statistics file)."""
    from srpipe.eval import fid
    from srpipe.cli import console
    from srpipe.config import resolve_device
    from srpipe.errors import UsageError

    if path_b is None and save_stats is None:
        raise click.UsageError("give PATH_B to compare with, or --save-stats FILE to only write statistics")
    try:
        spec = fid.FeatureSpec(dims=int(dims), patches=patches, patch_size=patch_size, patch_mode=patch_mode, seed=seed)
    except ValueError as e:
        raise UsageError(str(e)) from None
    with _progress(as_json) as progress:
        result = fid.compare(
            path_a,
            path_b,
            spec,
            kid_subsets=kid_subsets,
            kid_subset_size=kid_subset_size,
            save_stats_to=save_stats,
            weights_dir=weights_dir,
            device=resolve_device(device),
            batch_size=batch_size,
            cache=cache_dir,
            use_cache=not no_cache,
            progress=progress,
        )
    for w in result["warnings"]:
        console.warn(w)
    if as_json:
        _print_json(result)
        return
    _print_fid_tables(result, spec, path_a)


def _print_fid_tables(result: dict, spec, path_a) -> None:
    """The tables of `eval-fid`: what each side is, then FID and KID."""
    from rich.table import Table

    from srpipe.cli import console

    mode = "whole images" if spec.whole else f"{spec.patches} {spec.patch_mode} {spec.patch_size}px crops per image"
    t = Table(title=f"eval-fid ({mode}, {spec.dims}-d Inception features)")
    t.add_column("")
    t.add_column("A")
    t.add_column("B")
    sides = [result["a"], result["b"]]

    def side(s, key):
        return "-" if s is None else _fmt(s.get(key))

    t.add_row("path", *(side(s, "path") for s in sides))
    t.add_row("samples", *(side(s, "count") for s in sides))
    t.add_row(
        "features from cache",
        *(("-" if s is None or s["kind"] != "folder" else "yes" if s["cached"] else "no") for s in sides),
    )
    console.out.print(t)
    if result["fid"] is not None:
        r = Table(show_header=True)
        r.add_column("metric")
        r.add_column("value", justify="right")
        r.add_row("FID", _fmt(result["fid"]))
        if result["kid_mean"] is not None:
            if result["kid_subsets"] == 1:  # both sets smaller than a subset: one exact value
                r.add_row("KID (whole sets)", f"{result['kid_mean']:.6f}")
            else:
                r.add_row(
                    f"KID (mean ± std over {result['kid_subsets']} subsets)",
                    f"{result['kid_mean']:.6f} ± {result['kid_std']:.6f}",
                )
        console.out.print(r)
    if result["saved_stats"]:
        console.out.print(f"statistics of {path_a} written to {result['saved_stats']}", markup=False)


@click.command("eval")
@click.option("--sr", "sr_dir", required=True, type=click.Path(), help="Folder of super-resolved images.")
@click.option("--gt", "gt_dir", required=True, type=click.Path(), help="Folder of ground-truth images (same names).")
@click.option(
    "--scale",
    type=click.IntRange(min=1),
    default=4,
    show_default=True,
    help="SR factor: border cropped by default, and GT mod-cropped when SR is smaller by that much.",
)
@click.option(
    "--crop-border",
    type=click.IntRange(min=0),
    default=None,
    help="Pixels removed on each side before every metric (default: --scale, as BasicSR).",
)
@click.option(
    "--csv",
    "csv_file",
    type=click.Path(dir_okay=False),
    default=None,
    help="Write per-image rows to this CSV file (else they are printed).",
)
@click.option("--no-lpips", is_flag=True, help="Skip LPIPS (it needs the AlexNet weights).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output on stdout.")
@run_options
def eval_sr(sr_dir, gt_dir, scale, crop_border, csv_file, no_lpips, as_json, device, weights_dir):
    """PSNR/SSIM on Y (BasicSR/MATLAB convention) and RGB, colour PSNR and LPIPS of SR vs GT images."""
    from srpipe.cli import console
    from srpipe.config import resolve_device
    from srpipe.eval.metrics import METRIC_COLUMNS, EvalConfig, evaluate_folders

    cfg = EvalConfig(scale=scale, crop_border=crop_border, lpips=not no_lpips)
    with _progress(as_json) as progress:
        step = None if progress is None else (lambda done, total: progress("images", done, total))
        result = evaluate_folders(
            sr_dir, gt_dir, cfg, weights_dir=weights_dir, device=resolve_device(device), progress=step
        )
    for n in result["notes"]:
        console.warn(n)
    if csv_file:
        _write_csv(csv_file, result["images"])
    if as_json:
        _print_json(result)
        return
    from rich.table import Table

    heads = {
        "psnr_y": "PSNR-Y",
        "ssim_y": "SSIM-Y",
        "psnr_rgb": "PSNR-RGB",
        "ssim_rgb": "SSIM-RGB",
        "psnr_color": "PSNR-col",
        "lpips": "LPIPS",
    }
    if not csv_file:
        t = Table(title="per image")
        t.add_column("name")
        for c in METRIC_COLUMNS:
            t.add_column(heads[c], justify="right")
        for row in result["images"]:
            t.add_row(row["name"], *(_fmt(row[c]) for c in METRIC_COLUMNS))
        console.out.print(t)
    s = Table(
        title=f"mean over {len(result['images'])} images (crop {result['config']['crop_border']} px; "
        "PSNR in dB, LPIPS lower is better)"
    )
    for c in METRIC_COLUMNS:
        s.add_column(heads[c], justify="right")
    s.add_row(*(_fmt(result["summary"][c]) for c in METRIC_COLUMNS))
    console.out.print(s)
    if csv_file:
        console.out.print(f"per-image rows in {csv_file}", markup=False)


def _write_csv(path, rows: list[dict]) -> None:
    import csv
    import io

    from srpipe.errors import SrpipeError
    from srpipe.io.imageio import atomic_write_bytes
    from srpipe.eval.metrics import METRIC_COLUMNS

    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["name", *METRIC_COLUMNS])
    for r in rows:
        w.writerow([r["name"], *("" if r[c] is None else repr(r[c]) for c in METRIC_COLUMNS)])
    try:
        atomic_write_bytes(path, buf.getvalue().encode("utf-8"))
    except OSError as e:
        raise SrpipeError(f"cannot write {path}: {e.strerror or e}") from e


@click.command("eval-degradation")
@click.option("--real", "real_dir", required=True, type=click.Path(), help="Folder of real low-resolution photos.")
@click.option(
    "--synthetic",
    "synthetic_dir",
    required=True,
    type=click.Path(),
    help="Folder of synthetic LR images (make-pairs OUT/lr).",
)
@click.option(
    "--hr",
    "hr_dir",
    required=True,
    type=click.Path(),
    help="The HR images the synthetic LR came from (make-pairs OUT/hr); their bicubic LR is the baseline.",
)
@click.option(
    "--scale",
    type=click.IntRange(min=2),
    default=None,
    help="HR/LR factor (default: inferred from same-named synthetic and HR files).",
)
@click.option(
    "--patches",
    type=click.IntRange(min=1),
    default=16,
    show_default=True,
    help="Random LR patches per image for KID/FID.",
)
@click.option(
    "--patch-size",
    type=click.IntRange(min=8),
    default=64,
    show_default=True,
    help="LR patch side for KID/FID (lowered to the smallest image).",
)
@click.option(
    "--dims",
    type=click.Choice(["64", "192", "768", "2048"]),
    default="2048",
    show_default=True,
    help="Inception feature size for KID/FID.",
)
@click.option("--no-inception", is_flag=True, help="Only the statistics that need no pretrained network.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output on stdout.")
@run_options
def eval_degradation(
    real_dir, synthetic_dir, hr_dir, scale, patches, patch_size, dims, no_inception, as_json, device, weights_dir
):
    """How close synthetic LR (and, as a baseline, bicubic LR) is to real LR: lower is closer."""
    from srpipe.cli import console
    from srpipe.config import resolve_device
    from srpipe.eval.realism import RealismConfig, folder_report

    cfg = RealismConfig(patches=patches, patch_size=patch_size, dims=int(dims), inception=not no_inception)
    report = folder_report(
        real_dir, synthetic_dir, hr_dir, scale=scale, cfg=cfg, weights_dir=weights_dir, device=resolve_device(device)
    )
    for n in report["notes"]:
        console.warn(n)
    if as_json:
        _print_json(report)
        return
    from rich.table import Table

    c = report["counts"]
    t = Table(
        title=f"distance to real LR (x{report['scale']}; real {c['real']}, synthetic {c['synthetic']}, "
        f"bicubic {c['bicubic']} images): lower is closer"
    )
    for col, just in (
        ("metric", "left"),
        ("synthetic", "right"),
        ("bicubic", "right"),
        ("closer", "left"),
        ("unit", "left"),
    ):
        t.add_column(col, justify=just)
    for r in report["rows"]:
        t.add_row(r["label"], _fmt(r["synthetic_distance"]), _fmt(r["bicubic_distance"]), r["closer"] or "-", r["unit"])
    console.out.print(t)
    from srpipe.eval.realism.text import jpeg_line

    console.out.print(jpeg_line(report), markup=False)
