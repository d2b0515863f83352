"""`srpipe run`, `status`, `gc`, `report`."""

from __future__ import annotations

from pathlib import Path

import click

DEFAULT_PIPELINE = "pipeline.toml"


def _run_dir(pipeline: str, out: str | None) -> Path:
    return Path(out) if out else Path("runs") / Path(pipeline).stem


cache_option = click.option(
    "--cache",
    type=click.Path(file_okay=False),
    default=None,
    envvar="SRPIPE_CACHE",
    help="Stage cache folder (default .srpipe/cache, or $SRPIPE_CACHE).",
)


@click.command("run")
@click.argument("pipeline", type=click.Path(dir_okay=False), default=DEFAULT_PIPELINE)
@click.option(
    "--out", type=click.Path(file_okay=False), default=None, help="Run folder (default runs/<pipeline name>)."
)
@cache_option
@click.option("--force", multiple=True, metavar="STAGE", help="Rerun STAGE even if cached (repeatable).")
@click.option("--dry-run", is_flag=True, help="Show what would run, run nothing.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
@click.option(
    "--weights-dir",
    type=click.Path(file_okay=False),
    default=None,
    envvar="SRPIPE_WEIGHTS_DIR",
    help="Folder searched first for pretrained backbone files.",
)
def run_cmd(pipeline, out, cache, force, dry_run, device, weights_dir):
    """Run every stage of PIPELINE.toml that is not already cached."""
    from rich.table import Table

    from srpipe.cli.console import out as stdout
    from srpipe.config import RunOptions
    from srpipe.pipeline.run import run_pipeline
    from srpipe.pipeline.spec import load_pipeline

    p = load_pipeline(pipeline)
    run_dir = _run_dir(pipeline, out)
    rows = run_pipeline(
        p,
        run_dir=run_dir,
        cache=cache,
        run=RunOptions(device=device, weights_dir=weights_dir or ""),
        force=tuple(force),
        dry_run=dry_run,
    )
    t = Table(title=f"srpipe run {pipeline}" + (" (dry run)" if dry_run else ""))
    for col in ("stage", "key", "action", "seconds", "note"):
        t.add_column(col)
    for r in rows:
        t.add_row(r["stage"], (r["key"] or "?")[:12], r["action"], f"{r['seconds']:.1f}", r["reason"])
    stdout.print(t)
    if not dry_run:
        stdout.print(f"report: {run_dir / 'report.html'}")


@click.command("status")
@click.argument("pipeline", type=click.Path(dir_okay=False), default=DEFAULT_PIPELINE)
@click.option(
    "--out", type=click.Path(file_okay=False), default=None, help="Run folder (default runs/<pipeline name>)."
)
@cache_option
@click.option(
    "--weights-dir",
    type=click.Path(file_okay=False),
    default=None,
    envvar="SRPIPE_WEIGHTS_DIR",
    help="Folder searched first for pretrained backbone files (their identity is part of stage keys).",
)
def status_cmd(pipeline, out, cache, weights_dir):
    """Show each stage as fresh, stale (with the reason) or missing."""
    from rich.table import Table

    from srpipe.cli.console import out as stdout
    from srpipe.pipeline.run import default_cache, plan
    from srpipe.pipeline.spec import load_pipeline
    from srpipe.pipeline.store import Store

    p = load_pipeline(pipeline)
    states = plan(p, Store(cache or default_cache()), _run_dir(pipeline, out), weights_dir=weights_dir or "")
    t = Table(title=f"srpipe status {pipeline}")
    for col in ("stage", "status", "key", "reason"):
        t.add_column(col)
    colours = {"fresh": "green", "stale": "yellow", "missing": "red"}
    for s in states:
        t.add_row(s.stage.name, f"[{colours[s.status]}]{s.status}[/]", (s.key or "?")[:12], s.reason)
    stdout.print(t)


@click.command("gc")
@click.argument("pipelines", nargs=-1, type=click.Path(dir_okay=False))
@cache_option
@click.option("--dry-run", is_flag=True, help="List what would be removed.")
@click.option(
    "--weights-dir",
    type=click.Path(file_okay=False),
    default=None,
    envvar="SRPIPE_WEIGHTS_DIR",
    help="Folder searched first for pretrained backbone files (their identity is part of stage keys).",
)
def gc_cmd(pipelines, cache, dry_run, weights_dir):
    """Delete cached stage outputs that no known pipeline file refers to."""
    from srpipe.cli.console import out as stdout
    from srpipe.pipeline.run import gc
    from srpipe.pipeline.spec import load_pipeline

    removed = gc(cache, [load_pipeline(p) for p in pipelines], dry_run=dry_run, weights_dir=weights_dir or "")
    for f in removed:
        stdout.print(f"{'would remove' if dry_run else 'removed'} {f}")
    stdout.print(
        f"{len(removed)} cache entr{'y' if len(removed) == 1 else 'ies'} {'to remove' if dry_run else 'removed'}"
    )


@click.command("report")
@click.argument("run_dir", type=click.Path(file_okay=False, exists=True))
def report_cmd(run_dir):
    """Write RUN_DIR/report.html (self-contained, opens offline)."""
    from srpipe.cli.console import out as stdout
    from srpipe.pipeline.report import write_report

    stdout.print(f"report: {write_report(run_dir)}")
