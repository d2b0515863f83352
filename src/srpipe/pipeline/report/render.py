"""The report's template and its filters: numbers as the page shows them.

The page is a Jinja2 template (``pipeline/templates/report.html.j2``) with autoescaping on, so run
data such as file names and notes never become markup. The collectors format with the same
functions (`fmt_num`, `fmt_fixed`) where they build text themselves.
"""

from __future__ import annotations

import math


def render(data: dict) -> str:
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("srpipe.pipeline", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["num"] = fmt_num
    env.filters["fixed"] = fmt_fixed
    env.filters["duration"] = fmt_seconds
    return env.get_template("report.html.j2").render(**data)


def finite(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def fmt_num(v) -> str:
    """4 significant digits; lists as "a / b / c"; None as a dash."""
    if v is None:
        return "–"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, list):
        return " / ".join(fmt_num(a) for a in v)
    if isinstance(v, float):
        if math.isnan(v):
            return "n/a"
        if math.isinf(v):
            return "∞" if v > 0 else "-∞"
        return f"{v:.4g}" if abs(v) < 1e5 else f"{v:.3e}"
    return str(v)


def fmt_fixed(v, decimals: int) -> str:
    if v is None:
        return "–"
    if isinstance(v, (int, float)) and not math.isfinite(v):
        return fmt_num(float(v))
    return f"{v:.{decimals}f}"


def fmt_seconds(v) -> str:
    if not finite(v):
        return "–"
    if v < 60:
        return f"{v:.1f} s"
    m, s = divmod(int(round(v)), 60)
    return f"{m} min {s:02d} s" if m < 60 else f"{m // 60} h {m % 60:02d} min"
