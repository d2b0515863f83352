"""Collecting what a run left: ``run.json``, the cache entries it names, and each section's data.

`collect` reads the run folder and calls the sections (`images`, `figures`, `tables`, `kernel`); a
section whose stage is absent says why instead of failing.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from srpipe.degrade import contract as degrade_contract
from srpipe.errors import SrpipeError
from srpipe.io.pair_folder import PAIRS
from srpipe.pipeline.layout import MANIFEST, METRICS, RUN_RECORD
from srpipe.pipeline.report import figures, images, kernel, tables
from srpipe.pipeline.report.models import baseline_kind, kind_key
from srpipe.pipeline.report.render import fmt_num

STAGE_ORDER = (
    "degrade",
    "pairs",
    "test_pairs",
    "sr_psnr",
    "sr_gan",
    "interpolate",
    "bicubic_pairs",
    "baseline_bicubic",
    "blind_pairs",
    "baseline_blind",
    "upscale",
    "eval",
)


def collect(run_dir: Path) -> dict:
    """Everything the template shows, as plain data (images already encoded)."""
    try:
        record = json.loads((run_dir / RUN_RECORD).read_text())
    except FileNotFoundError:
        raise SrpipeError(
            f"{run_dir} has no {RUN_RECORD}: it is not a pipeline run folder; "
            "run `srpipe run PIPELINE.toml --out RUN_DIR` first"
        ) from None
    except (OSError, json.JSONDecodeError) as e:
        raise SrpipeError(f"{run_dir / RUN_RECORD} is unreadable ({e}); rerun `srpipe run` to rewrite it") from None
    recorded = record.get("stages", {})
    entries = {n: Path(s["entry"]) for n, s in recorded.items() if Path(s.get("entry", "")).is_dir()}
    manifests = {n: _read_json(e / MANIFEST) or {} for n, e in entries.items()}
    metrics = _read_json(entries["eval"] / METRICS) if "eval" in entries else None
    notes: list[str] = []

    stages = _stage_rows(recorded, entries, manifests)
    method = kernel.degrade_method(recorded, manifests)
    learned, learned_why = kernel.learned_degradation(entries, method)
    # the baseline stages' kinds (a run from before kinds had one stage, "baseline", on bicubic pairs)
    kinds = sorted({baseline_kind(n) for n in entries} - {None}, key=kind_key)
    realism, realism_why = _realism(entries, metrics)
    scale = _scale(recorded, entries)
    comparisons, comp_why = images.comparisons(entries, metrics, scale, notes)
    real, real_why = images.real_comparisons(entries, scale)
    real_pairs = tables.metric_table(metrics.get("real_pairs"))[0] if metrics and metrics.get("real_pairs") else None
    table, table_why = tables.metric_table(metrics)
    alpha_plot, alpha_why = figures.alpha_sweep(metrics)
    return {
        "title": f"srpipe report: {Path(record.get('pipeline', run_dir.name)).stem}",
        "pipeline": record.get("pipeline", "?"),
        "cache": record.get("cache", "?"),
        "srpipe": record.get("srpipe", "?"),
        "run_dir": str(run_dir.resolve()),
        "generated": time.strftime("%Y-%m-%d %H:%M:%S"),
        "stages": stages,
        "missing": [s["name"] for s in stages if s["state"] == "absent"],
        "gone": [s["name"] for s in stages if s["state"] == "gone"],
        "headline": [
            *tables.headline(metrics, realism, len(real), tuple(kinds)),
            *([kernel.headline(learned)] if learned else []),
        ],
        "method": method,
        "learned": learned,
        "learned_why": learned_why,
        "real": real,
        "real_why": real_why,
        "real_pairs": real_pairs,
        "real_pairs_n": len(next(iter(metrics["real_pairs"]["per_image"].values()), [])) if real_pairs else 0,
        "realism": realism,
        "realism_why": realism_why,
        "samples": images.sample_grids(entries),
        "samples_why": "" if "degrade" in entries else "no degrade stage output",
        "scale": scale,
        "comparisons": comparisons,
        "comparisons_why": comp_why,
        "metrics": table,
        "metrics_why": table_why,
        "alpha_plot": alpha_plot,
        "alpha_why": alpha_why,
        "losses": figures.loss_plots(entries),
        "notes": notes + (list(metrics.get("notes", [])) if metrics else []),
    }


def _read_json(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def _stage_rows(recorded: dict, entries: dict, manifests: dict) -> list[dict]:
    names = [n for n in STAGE_ORDER if n in recorded] + sorted(set(recorded) - set(STAGE_ORDER))
    rows = []
    for n in names:
        s, m = recorded[n], manifests.get(n, {})
        rows.append(
            {
                "name": n,
                "key": s.get("key", "")[:12],
                "state": "ok" if n in entries else "gone",
                "seconds": s.get("seconds", m.get("seconds")),
                "cached": s.get("cached"),
                "describe": s.get("describe") or m.get("describe") or "",
                "summary": _short_summary(m.get("summary")),
            }
        )
    for n in STAGE_ORDER:  # what this pipeline file did not enable: shown, greyed out
        if n not in recorded:
            rows.append(
                {
                    "name": n,
                    "key": "",
                    "state": "absent",
                    "seconds": None,
                    "cached": None,
                    "describe": "",
                    "summary": "",
                }
            )
    return rows


def _short_summary(summary) -> str:
    """The manifest summary's scalars and short lists, e.g. "pairs: 12; mode: SDSR"."""
    if not isinstance(summary, dict):
        return ""
    parts = []
    for k, v in summary.items():
        if k == "active_losses":  # already in the stage's `describe`
            continue
        if isinstance(v, (str, int, float)) and not isinstance(v, bool):
            parts.append(f"{k}: {fmt_num(v)}")
        elif isinstance(v, list) and 0 < len(v) <= 8 and all(isinstance(a, (str, int, float)) for a in v):
            parts.append(f"{k}: {', '.join(str(a) for a in v)}")
        elif isinstance(v, dict) and k == "weights" and all(isinstance(a, str) for a in v.values()):
            parts.append(f"weights: {', '.join(v.values())}")
    return "; ".join(parts)


def _scale(recorded: dict, entries: dict) -> int | None:
    for stage in ("upscale", "eval"):
        s = recorded.get(stage, {}).get("params", {})
        if isinstance(s.get("scale"), int):
            return s["scale"]
    pairs = _read_json(entries["test_pairs"] / PAIRS) if "test_pairs" in entries else None
    return pairs.get("scale") if isinstance(pairs, dict) else None


def _realism(entries: dict, metrics: dict | None) -> tuple[dict | None, str]:
    if metrics and isinstance(metrics.get("degradation"), dict):
        which = {"pairs": "the training pairs' LR"}.get(
            metrics["degradation"].get("synthetic_from"), "the test pairs' LR"
        )
        return {**metrics["degradation"], "source": f"eval stage: held-out real LR vs {which}"}, ""
    if "degrade" in entries:
        d = _read_json(entries["degrade"] / degrade_contract.DEGRADATION)
        if isinstance(d, dict) and d.get("rows"):
            return {**d, "source": "degrade stage: held-out real LR"}, ""
    if "eval" not in entries:
        return None, "the eval stage is not in this run (it needs [sr] enabled and [inputs] test_hr)"
    return None, (
        "eval found no held-out real LR to compare with (degrade data.val_fraction = 0, or no [inputs] real_lr)"
    )
