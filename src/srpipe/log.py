"""Diagnostics of the library: messages through stdlib `logging`, progress through a hook.

Library code reports with `info` / `warn` (the ``srpipe`` logger) and shows long loops with
`progress` / `track`. Nothing here prints by itself: a notebook or a script gets plain `logging`
(warnings reach stderr through logging's last-resort handler until the caller configures logging)
and no progress bars. The command line (`srpipe.cli.console.configure`) installs a handler that
renders on its rich stderr console, a rich progress bar, and mutes DDP ranks other than 0.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TypeVar

logger = logging.getLogger("srpipe")

T = TypeVar("T")


def info(msg: str) -> None:
    logger.info(msg)


def warn(msg: str) -> None:
    logger.warning(msg)


class Progress:
    """A progress display: `update(step, losses)` inside a ``with`` block. This base class shows nothing."""

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc) -> None:
        return None

    def update(self, step: int, losses: dict[str, float] | None = None) -> None:
        """`step` of the total done; `losses`, when given, are the latest values worth showing."""


# (total, start, description, transient) -> Progress; None: no display (the library's default).
ProgressFactory = Callable[[int, int, str, bool], Progress]
_factory: ProgressFactory | None = None


def set_progress(factory: ProgressFactory | None) -> None:
    """Install how progress is shown (the CLI's rich bar), or None for none."""
    global _factory
    _factory = factory


def progress(
    total: int, description: str, *, start: int = 0, transient: bool = False, enabled: bool = True
) -> Progress:
    """A progress display for `total` steps of which `start` are done (nothing shown if `enabled` is false)."""
    if not enabled or _factory is None:
        return Progress()
    return _factory(total, start, description, transient)


def track(items: Sequence[T] | Iterable[T], description: str, *, total: int | None = None) -> Iterator[T]:
    """Iterate over `items` with a transient progress display."""
    n = total if total is not None else len(items)  # type: ignore[arg-type]
    with progress(n, description, transient=True) as bar:
        for i, item in enumerate(items, 1):
            yield item
            bar.update(i)
