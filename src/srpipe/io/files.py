"""Files in and out, whatever they hold: atomic writes, JSON records, content hashes.

Every write goes through a temporary file in the target folder, fsync, then `os.replace`, so a
crash leaves the old file or the new one, never a truncated one.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

from srpipe.io import _faults

_UMASK = os.umask(0)
os.umask(_UMASK)  # read the process umask once (os.umask can only be read by setting it)


def file_sha256(path: str | Path) -> str:
    """Hex sha256 of a file's bytes, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write `data` to `path` through a temp file in the same folder, fsync, then `os.replace`."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent)
    try:
        os.fchmod(fd, 0o666 & ~_UMASK)  # mkstemp makes 0600 files; outputs get the usual permissions
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        _faults.before_rename(p)  # crash tests: `SRPIPE_FAULT=write:<path end>` dies between write and rename
        os.replace(tmp, p)
    except BaseException as e:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(e, OSError) and e.errno is not None and e.filename != str(p):
            # A full disk fails in write() or fsync(), whose errors name no file, or in os.replace,
            # which names the temp file: name the file the caller asked for instead.
            raise OSError(e.errno, e.strerror, str(p)) from e
        raise


def write_json(path: str | Path, data) -> None:
    """`data` as indented JSON with sorted keys, atomically."""
    atomic_write_bytes(path, (json.dumps(data, indent=2, sort_keys=True) + "\n").encode())


def write_npy(path: str | Path, array) -> None:
    """A numpy array as `.npy` (no pickles), atomically."""
    import io

    import numpy as np

    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    atomic_write_bytes(path, buf.getvalue())
