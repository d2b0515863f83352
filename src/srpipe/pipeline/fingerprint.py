"""Content fingerprints and stage keys.

- `canonical_json`: sorted keys, no whitespace, so equal data always hashes equal, in any process.
- `folder_fingerprint`: sha256 over the sorted (name, size, sha256 of content) of a folder's images,
  listed by `srpipe.io.imageio.list_images`, the function every reader lists its input folders with.
  Per-file hashes are cached by (inode, mtime_ns, size), as dvc-data's `State` does, so an
  unchanged folder is not read again.
- `stage_key`: sha256 of canonical JSON of {stage, version, params, inputs}; the srpipe version and
  run options are deliberately not part of it (key by inputs; a stage's version is bumped by hand when
  its results change).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from srpipe.errors import SrpipeError
from srpipe.io.imageio import atomic_write_bytes, file_sha256, list_images  # noqa: F401  (file_sha256: used by store)


def canonical_json(obj) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class StatCache:
    """Per-file sha256 remembered by (path, inode, mtime_ns, size); saved as one JSON file."""

    def __init__(self, path: str | Path | None):
        self.path = Path(path) if path else None
        self.entries: dict[str, list] = {}
        self.dirty = False
        self.reads = 0  # files actually hashed (tests check that unchanged folders are not re-read)
        if self.path and self.path.is_file():
            try:
                self.entries = json.loads(self.path.read_text())
            except (OSError, json.JSONDecodeError):
                self.entries = {}  # a damaged cache only costs re-hashing

    def sha256(self, p: Path) -> str:
        st = p.stat()
        key = str(p.resolve())
        sig = [st.st_ino, st.st_mtime_ns, st.st_size]
        hit = self.entries.get(key)
        if hit and hit[:3] == sig:
            return hit[3]
        digest = file_sha256(p)
        self.reads += 1
        self.entries[key] = [*sig, digest]
        self.dirty = True
        return digest

    def save(self) -> None:
        if self.path and self.dirty:
            atomic_write_bytes(self.path, canonical_json(self.entries).encode())
            self.dirty = False


def folder_fingerprint(folder: str | Path, stat_cache: StatCache | None = None) -> str:
    """sha256 of the sorted (name, size, content sha256) of the images `srpipe.io.imageio.list_images` finds
    in `folder` (a file: of that file): what every stage reader takes from an input folder."""
    root = Path(folder)
    if not root.exists():
        raise SrpipeError(f"input {root} does not exist")
    cache = stat_cache or StatCache(None)
    if root.is_file():
        return sha256_bytes(canonical_json([[root.name, root.stat().st_size, cache.sha256(root)]]).encode())
    # Exactly the files the stages read: the readers list a folder with the same function.
    entries = [[p.name, p.stat().st_size, cache.sha256(p)] for p in list_images(root)]
    return sha256_bytes(canonical_json(entries).encode())


def stage_key(stage: str, version: int, params: dict, inputs: dict) -> str:
    return sha256_bytes(
        canonical_json({"stage": stage, "version": version, "params": params, "inputs": inputs}).encode()
    )
