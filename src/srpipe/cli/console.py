"""The CLI's two rich consoles: results on stdout, progress and diagnostics on stderr."""

from __future__ import annotations

from rich.console import Console

out = Console(highlight=False, emoji=False)
err = Console(stderr=True, highlight=False, emoji=False)


def info(msg: str) -> None:
    err.print(msg, markup=False)


def warn(msg: str) -> None:
    err.print(f"[yellow]warning:[/] {msg}")


def error(msg: str) -> None:
    err.print("[bold red]error:[/] ", end="")
    err.print(msg, markup=False)
