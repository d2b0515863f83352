"""The stage cache: `<cache>/<stage>/<key[:2]>/<key>/`, complete only once `manifest.json` exists.

A stage runs directly in its entry folder (so an interrupted stage resumes from its checkpoints
there) and writes `manifest.json` last: key, params, input fingerprints, output files with hashes,
timings, metrics, versions. No valid manifest means not complete, whatever else the folder holds.

`CacheLock` is an exclusive `flock` on `<cache>/lock`: the kernel releases it when the holder
exits (even by SIGKILL), so a lock left by a dead process is recognised as stale and taken over.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import time
import uuid
from pathlib import Path

from srpipe import log
from srpipe.errors import SrpipeError
from srpipe.io import _faults
from srpipe.pipeline.fingerprint import StatCache, canonical_json, file_sha256, sha256_bytes
from srpipe.pipeline.layout import MANIFEST, STAT_CACHE
from srpipe.io.files import write_json

SKIP_DIRS = ("ckpt",)  # resume state: not a result, not hashed


class Store:
    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.stat_cache = StatCache(self.root / STAT_CACHE)

    def entry(self, stage: str, key: str) -> Path:
        return self.root / stage / key[:2] / key

    def manifest(self, stage: str, key: str) -> dict | None:
        """The manifest of a complete entry, or None (missing, unreadable or for another key)."""
        p = self.entry(stage, key) / MANIFEST
        try:
            m = json.loads(p.read_text())
        except (OSError, json.JSONDecodeError):
            return None
        return m if isinstance(m, dict) and m.get("key") == key and "outputs" in m else None

    def entries(self):
        """(stage, key, folder) of every entry, complete or not."""
        if not self.root.is_dir():
            return
        for stage_dir in sorted(p for p in self.root.iterdir() if p.is_dir()):
            for shard in sorted(p for p in stage_dir.iterdir() if p.is_dir() and len(p.name) == 2):
                for e in sorted(p for p in shard.iterdir() if p.is_dir()):
                    yield stage_dir.name, e.name, e


def output_files(folder: Path) -> list[list]:
    """[[relpath, size, sha256], ...] of a stage's results (checkpoints and the manifest excluded)."""
    out = []
    for dirpath, dirnames, filenames in os.walk(folder):
        rel = Path(dirpath).relative_to(folder)
        if rel == Path("."):
            dirnames[:] = [d for d in dirnames if d not in SKIP_DIRS]
        dirnames.sort()
        for name in sorted(filenames):
            p = Path(dirpath) / name
            if rel == Path(".") and name == MANIFEST or name.startswith("."):
                continue
            out.append([p.relative_to(folder).as_posix(), p.stat().st_size, file_sha256(p)])
    return out


def outputs_fingerprint(manifest: dict) -> str:
    """What downstream stages depend on: the outputs' hashes and the run that made them.

    The run id makes a forced rerun upstream invalidate downstream even if it reproduced
    byte-identical files: a user who forces a rerun asks for everything after it to run again.
    """
    return sha256_bytes(canonical_json({"outputs": manifest["outputs"], "run": manifest["run_id"]}).encode())


def write_manifest(folder: Path, data: dict) -> dict:
    m = {**data, "outputs": output_files(folder), "run_id": uuid.uuid4().hex, "completed": time.time()}
    _faults.at("manifest")  # crash tests: die right before the manifest lands
    try:
        write_json(folder / MANIFEST, m)
    except OSError as e:
        from srpipe.errors import write_failed

        raise SrpipeError(
            write_failed(
                folder / MANIFEST, e, kept="the stage is not marked complete and will resume from its checkpoints"
            )
        ) from e
    return m


def reset_entry(folder: Path) -> None:
    """Empty an entry folder (a forced rerun starts clean)."""
    if folder.exists():
        shutil.rmtree(folder)


class CacheLockedError(SrpipeError):
    pass


class CacheLock:
    """Exclusive lock on a cache; a lock whose holder is gone is taken over with a notice."""

    def __init__(self, root: str | Path, warn=log.warn):
        self.path = Path(root) / "lock"
        self.warn = warn
        self.fh = None

    def __enter__(self):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fh = open(self.path, "a+")
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = fh.read().strip() or "another process"
            fh.close()
            raise CacheLockedError(
                f"the cache {self.path.parent} is in use by {holder}; wait for it to finish "
                f"(two runs on one cache never share it)"
            ) from None
        fh.seek(0)
        old = fh.read().strip()
        if old:
            self.warn(f"took over a stale lock on {self.path.parent} (its holder, {old}, is gone)")
        fh.seek(0)
        fh.truncate()
        fh.write(f"pid {os.getpid()} since {time.strftime('%Y-%m-%d %H:%M:%S')}")
        fh.flush()
        self.fh = fh
        return self

    def __exit__(self, *exc):
        if self.fh:
            self.fh.seek(0)
            self.fh.truncate()  # an empty lock file: a clean release, not a stale lock
            self.fh.flush()
            fcntl.flock(self.fh, fcntl.LOCK_UN)
            self.fh.close()
            self.fh = None
