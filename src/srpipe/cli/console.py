"""The CLI's two rich consoles (results on stdout, progress and diagnostics on stderr), and how the
library's messages and progress (`srpipe.log`) are rendered on them."""

from __future__ import annotations

import logging
import os
import time

from rich.console import Console

out = Console(highlight=False, emoji=False, soft_wrap=True)  # soft_wrap: long lines stay whole in logs
err = Console(stderr=True, highlight=False, emoji=False, soft_wrap=True)


def info(msg: str) -> None:
    err.print(msg, markup=False)


def warn(msg: str) -> None:
    err.print("[yellow]warning:[/] ", end="")
    err.print(msg, markup=False)  # messages hold paths and `[section]` names: never markup


def error(msg: str) -> None:
    err.print("[bold red]error:[/] ", end="")
    err.print(msg, markup=False)


class _ConsoleHandler(logging.Handler):
    """Library log records on the stderr console: `warning:` / `error:` prefixes, never markup."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            msg = record.getMessage()
            if record.levelno >= logging.ERROR:
                error(msg)
            elif record.levelno >= logging.WARNING:
                warn(msg)
            else:
                info(msg)
        except Exception:
            self.handleError(record)


class RichProgress:
    """Rich progress bar on stderr: step/total, it/s, ETA and the latest losses."""

    def __init__(self, total: int, start: int, description: str, transient: bool = False):
        from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn
        from rich.progress import Progress as Bar

        self._p = Bar(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            TextColumn("{task.fields[losses]}"),
            console=err,
            transient=transient,
        )
        self._task = self._p.add_task(description, total=total, completed=start, rate="", losses="")
        self._start, self._t0 = start, time.time()

    def __enter__(self):
        self._p.start()
        return self

    def __exit__(self, *exc):
        self._p.stop()

    def update(self, step: int, losses: dict[str, float] | None = None) -> None:
        dt = time.time() - self._t0
        rate = f"{(step - self._start) / dt:.2f} it/s" if dt > 0 and step > self._start else ""
        fields = {"rate": rate}
        if losses is not None:
            fields["losses"] = " ".join(f"{k} {v:.4g}" for k, v in losses.items())
        self._p.update(self._task, completed=step, **fields)


def configure() -> None:
    """Render `srpipe.log` on the consoles; under torchrun only rank 0 speaks (the others are muted)."""
    from srpipe import log

    logger = log.logger
    if not any(isinstance(h, _ConsoleHandler) for h in logger.handlers):
        logger.addHandler(_ConsoleHandler())
    logger.setLevel(logging.INFO)
    logger.propagate = False  # the command line owns the process's output: no second copy via the root logger
    log.set_progress(RichProgress)
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and int(os.environ.get("RANK", "0")) != 0:
        err.quiet = out.quiet = True  # one voice: rank 0 prints progress, warnings and results
