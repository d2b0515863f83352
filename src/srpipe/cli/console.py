"""The CLI's two rich consoles: results on stdout, progress and diagnostics on stderr."""

from __future__ import annotations

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
