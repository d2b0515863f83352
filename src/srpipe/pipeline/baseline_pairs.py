"""The baseline stages' pairs: what a user could train on without learning a degradation.

`bicubic_pairs` writes bicubic LR of the training HR (make-pairs' HR: same cleanup and mod-crop, same
layout, pairs.json last); `blind_pairs` writes Real-ESRGAN's blind-degradation LR of the same HR
(`srpipe.degrade.blind.make_blind_pairs`), `draws` LR images per HR.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from srpipe.pipeline.stages import Context


def make_bicubic_pairs(hr_dir: Path, out: Path, scale: int, cleanup_factor: int) -> dict:
    """Bicubic LR/HR pairs with make-pairs' HR (same cleanup and mod-crop) and layout, pairs.json last."""
    from srpipe.engine.folders import map_folder
    from srpipe.io.files import write_json
    from srpipe.io.pair_folder import PAIRS

    (out / PAIRS).unlink(missing_ok=True)
    one = partial(_bicubic_pair, out=out, scale=scale, cleanup_factor=cleanup_factor)
    done = map_folder(hr_dir, one, what="HR")
    m = {
        "pairs": done.results,
        "scale": scale,
        "mode": "bicubic",
        "method": "bicubic",
        "cleanup_factor": cleanup_factor,
        "skipped": done.skipped,
    }
    write_json(out / PAIRS, m)
    return m


def _bicubic_pair(p: Path, *, out: Path, scale: int, cleanup_factor: int) -> dict:
    """Write one HR file's make-pairs HR and its bicubic LR; its pairs.json entry."""
    from srpipe.engine.folders import Skip
    from srpipe.io.imageio import read_image, write_png
    from srpipe.io.pair_folder import pair_entry, pair_files
    from srpipe.io.resize import bicubic_down, mod_crop

    hr, _ = read_image(p)
    if cleanup_factor > 1:
        hr = bicubic_down(mod_crop(hr, cleanup_factor), cleanup_factor)
    hr = mod_crop(hr, scale)
    if min(hr.shape[-2:]) < scale:
        raise Skip(f"{p} is too small for x{scale}")
    gt_path, lq_path = pair_files(out, p.stem)
    write_png(gt_path, hr)
    write_png(lq_path, bicubic_down(hr, scale))
    return pair_entry(p.stem) | {"source": p.name}


def run_bicubic_pairs(hr_input: str, scale: int, cleanup_factor: int):
    def fn(ctx: Context) -> dict:
        m = make_bicubic_pairs(ctx.inputs[hr_input], ctx.out, scale, cleanup_factor)
        return {"pairs": len(m["pairs"]), "mode": "bicubic"}

    return fn


def run_blind_pairs(hr_input: str, scale: int, cleanup_factor: int, draws: int, seed: int):
    def fn(ctx: Context) -> dict:
        from srpipe.degrade.blind import make_blind_pairs

        hr_dir = ctx.inputs[hr_input]
        if cleanup_factor > 1:  # the HR of the other pairs (TDSR): cleaned first, then degraded blindly
            hr_dir = ctx.out / "cleaned_hr"
            _write_cleaned_hr(ctx.inputs[hr_input], hr_dir, cleanup_factor)
        m = make_blind_pairs(hr_dir=hr_dir, out_dir=ctx.out, scale=scale, draws=draws, seed=seed)
        return {"pairs": len(m["pairs"]), "mode": "blind", "draws": draws}

    return fn


def _write_cleaned_hr(src: Path, dest: Path, cleanup_factor: int) -> None:
    """make-pairs' TDSR cleanup (bicubic_down by the factor after a mod-crop) of every readable image."""
    from srpipe.engine.folders import map_folder

    map_folder(src, partial(_write_cleaned, dest=dest, cleanup_factor=cleanup_factor), what="HR")


def _write_cleaned(p: Path, *, dest: Path, cleanup_factor: int) -> None:
    from srpipe.io.imageio import read_image, write_png
    from srpipe.io.resize import bicubic_down, mod_crop

    hr, _ = read_image(p)
    write_png(dest / f"{p.stem}.png", bicubic_down(mod_crop(hr, cleanup_factor), cleanup_factor))
