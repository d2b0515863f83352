"""Map one image folder to another: make-pairs, the blind and bicubic pair writers, upscale.

Each of them lists a folder, does one thing to every image and records what it did. What they share
is here, so each keeps only what is its own (what to do with one image, what to record):

- `map_folder(sources, fn)` runs `fn(path)` on every image; under torchrun each rank takes every
  `size`-th file (`srpipe.engine.distributed.Share`), and the records of all ranks are merged, on
  every rank, in the files' order, so the result does not depend on the number of processes.
- A file `fn` cannot use is left out with its reason: an unreadable one (`fn` raises the
  `ImageReadError` of `read_image`) or one it refuses (`fn` raises `Skip`, e.g. too small for the
  scale). The reasons go into one warning at the end; when no file was usable, one error names them
  instead, and nothing counts as written.
- `session(device)` is the distributed session a command runs in: it joins torchrun's process group
  (a world of one without it), shares the files and their failures, and closes the group at the end.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from srpipe.engine import distributed
from srpipe.errors import SrpipeError
from srpipe.io.imageio import ImageReadError, list_sources
from srpipe.log import track, warn

MAX_REASONS = 5  # reasons the "no usable image" error lists (one line, however many files failed)


class Skip(Exception):
    """Raised by a mapped function: leave this file out; the message says why and names the file."""


@dataclass(frozen=True)
class Mapped:
    """What `map_folder` did, gathered from every rank."""

    results: list  # the mapped function's records (None left out), in the order of the files
    skipped: list[str]  # why each left-out file was left out, in the order of the files


@contextmanager
def session(device: str) -> Iterator[tuple[distributed.Share, torch.device]]:
    """(share, device) for a command that maps files: joins torchrun's process group when there is one
    (`srpipe.engine.distributed.init`), passes a rank's failure to every rank, closes the group at the end."""
    world, dev = distributed.init(device)
    try:
        with distributed.Share(world) as share:
            yield share, dev
    finally:
        world.close()


def map_folder(
    sources: str | Path | Sequence[Path],
    fn: Callable[[Path], Any],
    *,
    what: str = "input",
    ext: str = "png",
    where: str | Path | None = None,
    share: distributed.Share | None = None,
    progress: str | None = None,
) -> Mapped:
    """`fn(path)` on every image of `sources`, this rank's share of them under `share` (none: all).

    `sources`: a folder, listed by `list_sources` (no image, or two files that would be written under one
    name ``STEM.ext``, stop; `what` names the folder in those errors), or the files themselves, already
    listed (`where` then names them in the errors). `fn` returns its record of the file, or None when
    there is nothing to record (an output that exists already); it raises `Skip`, or lets the
    `ImageReadError` of `read_image` through, to leave the file out. `progress`: a description for a
    progress display, none without.
    """
    if isinstance(sources, (str, Path)):
        where = sources if where is None else where
        paths = list_sources(sources, what, ext=ext)
    else:
        paths = list(sources)
        if not paths:
            raise SrpipeError(f"{what} {where} contains no images")
    share = share or distributed.Share(distributed.World())
    order = {p: i for i, p in enumerate(paths)}
    done, skipped = [], []
    mine = share.take(paths)
    for p in track(mine, progress) if progress else mine:
        try:
            record = fn(p)
        except (ImageReadError, Skip) as e:
            skipped.append((order[p], str(e)))
            continue
        if record is not None:
            done.append((order[p], record))
    done, skipped = share.merge(done, skipped)  # every rank's, once all have finished
    reasons = [why for _, why in sorted(skipped, key=lambda iw: iw[0])]
    if len(reasons) == len(paths):  # one line that says why each file was left out, not a warning and an error
        more = f"; and {len(reasons) - MAX_REASONS} more" if len(reasons) > MAX_REASONS else ""
        raise SrpipeError(f"no usable image in {where}, nothing written: " + "; ".join(reasons[:MAX_REASONS]) + more)
    if reasons:
        warn(f"skipped {len(reasons)} file(s): " + "; ".join(reasons))
    return Mapped([r for _, r in sorted(done, key=lambda ir: ir[0])], reasons)
