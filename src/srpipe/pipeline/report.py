"""Placeholder: the HTML report is being written (issue 5). Writes a minimal page for now."""

from __future__ import annotations

import html
import json
from pathlib import Path

from srpipe.imageio import atomic_write_bytes


def write_report(run_dir: str | Path) -> Path:
    run_dir = Path(run_dir)
    record = json.loads((run_dir / "run.json").read_text())
    rows = "".join(f"<tr><td>{html.escape(n)}</td><td>{s['key'][:12]}</td></tr>" for n, s in record["stages"].items())
    page = f"<!doctype html><title>srpipe report</title><table>{rows}</table>"
    atomic_write_bytes(run_dir / "report.html", page.encode())
    return run_dir / "report.html"
