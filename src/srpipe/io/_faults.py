"""Fault injection for the crash tests: ``SRPIPE_FAULT=<point>`` kills this process (SIGKILL) there.

Points: ``ckpt-mid`` (a checkpoint's weights written, its state not), ``ckpt-before-latest`` (the
checkpoint folder in place, `latest` not moved), ``manifest`` (a pipeline stage done, its manifest not
written), and ``write:<end of a path>`` (e.g. ``write:run/generator.safetensors``) in
`srpipe.io.files.atomic_write_bytes`: the data written and synced to the temporary file, not renamed
into place. Unset (always, outside tests), every hook is one environment lookup.
"""

from __future__ import annotations

import os
from pathlib import Path

ENV = "SRPIPE_FAULT"


def _die() -> None:
    os.kill(os.getpid(), 9)


def at(point: str) -> None:
    """Die here when `SRPIPE_FAULT` is `point`."""
    if os.environ.get(ENV) == point:
        _die()


def before_rename(path: Path) -> None:
    """Die here when `SRPIPE_FAULT` is ``write:<end>`` and `path` ends with the path `<end>`."""
    fault = os.environ.get(ENV, "")
    if fault.startswith("write:") and ("/" + path.as_posix()).endswith("/" + fault[len("write:") :]):
        _die()
