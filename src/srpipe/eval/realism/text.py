"""The realism report in words: advice about JPEG blocking, the JPEG line and the Markdown table."""

from __future__ import annotations

import math

from srpipe.eval.realism.measures import BLOCKY


def advice(blockiness: dict, pairs: dict | None) -> list[str]:
    """What to do about a JPEG-blocked real LR, given what made the synthetic LR (`pairs`: its pairs.json).

    Nothing is suggested that the pairs already had: a JPEG stage applied by make-pairs (its
    `jpeg.qualities`) or the blind recipe's own JPEG. DSGAN's grid limitation is said for DSGAN (or
    unknown) pairs only: pdm's forward ends in the JPEG stage itself.
    """
    from srpipe.io.jpeg import summarize

    b = blockiness["real"]
    if not b > BLOCKY:
        return []
    seen = f"the real LR shows JPEG 8x8 blocking (blockiness {b:.2f})"
    method = (pairs or {}).get("method") or ("dsgan" if pairs and "generator" in pairs else None)
    jpeg = (pairs or {}).get("jpeg") or {}
    used = [q for q in (jpeg.get("qualities") or {}).values() if q is not None]
    if method == "blind":
        return [f"{seen}; the blind recipe JPEG-compresses every synthetic LR image (quality 30-95) already"]
    if used:
        return [f"{seen}; make-pairs JPEG-compressed {len(used)} synthetic LR image(s), quality {summarize(used)}"]
    grid = (
        ": a generator without a grid (DSGAN's stride-1 convolutions are translation-equivariant) cannot make "
        "blocks on a fixed 8-pixel grid, so this gap stays until the LR is JPEG-compressed"
        if method in (None, "dsgan")
        else ""
    )
    if pairs is None:
        how = (
            "make-pairs --jpeg auto (its default) compresses the synthetic LR at the qualities estimated from the "
            "real LR; if these LR images are make-pairs output, pass their folder's pairs.json to see what it applied"
        )
    elif (jpeg.get("spec") or {}).get("mode") == "off":
        how = 'make-pairs ran with --jpeg off: use --jpeg auto (pipeline: [pairs] jpeg = "auto") so SR learns to remove them'
    elif method == "bicubic":
        how = "bicubic pairs have no JPEG stage: SR trained on them never sees blocks"
    else:
        how = "make-pairs applied no JPEG stage (its model stored no JPEG estimate): pass --jpeg Q or QMIN:QMAX"
    return [f"{seen}{grid}; {how}"]


def _num(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, list):
        return " ".join(_num(a) for a in v)
    if isinstance(v, float):
        if not math.isfinite(v):
            return str(v)
        return f"{v:.4g}"
    return str(v)


def jpeg_line(report: dict) -> str | None:
    """'JPEG stage: real LR: ...; synthetic: ...' from a report's `jpeg` entry (None for older reports)."""
    from srpipe.io.jpeg import JpegEstimate

    if not report.get("jpeg"):
        return None
    j = {k: JpegEstimate.from_json(v).describe() for k, v in report["jpeg"].items()}
    return f"JPEG stage: real LR: {j['real']}; synthetic: {j['synthetic']}"


def report_markdown(report: dict) -> str:
    """The report as a Markdown table (what `degrade-train` stores with its run)."""
    lines = [
        f"Degradation realism (x{report['scale']}; images: real {report['counts']['real']}, "
        f"synthetic {report['counts']['synthetic']}, bicubic {report['counts']['bicubic']}). "
        "Distance to real: lower is closer.",
        "",
        "| metric | synthetic | bicubic | closer | real | synthetic value | bicubic value | unit |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in report["rows"]:
        lines.append(
            f"| {r['label']} | {_num(r['synthetic_distance'])} | {_num(r['bicubic_distance'])} | {r['closer'] or '-'} "
            f"| {_num(r['real'])} | {_num(r['synthetic'])} | {_num(r['bicubic'])} | {r['unit']} |"
        )
    line = jpeg_line(report)
    if report["notes"] or line:
        lines.append("")
        lines += [f"- {n}" for n in ([line] if line else []) + report["notes"]]
    return "\n".join(lines) + "\n"
