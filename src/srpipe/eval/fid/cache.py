"""The feature cache: one ``.npz`` of float32 features per content key (file names and bytes,
feature spec, decoder, Inception weights), under ``$SRPIPE_CACHE/features``."""

from __future__ import annotations

import hashlib
import io
import json
import os
from pathlib import Path

import numpy as np

from srpipe.eval.fid.features import FeatureSpec

CACHE_VERSION = 1  # bump when feature extraction changes in a way the key cannot see


def cache_dir(path: str | Path | None = None) -> Path:
    """Feature cache folder: `path`, else $SRPIPE_CACHE/features, else ~/.cache/srpipe/features."""
    if path:
        return Path(path)
    return Path(os.environ.get("SRPIPE_CACHE") or "~/.cache/srpipe").expanduser() / "features"


def _weights_fingerprint(weights_dir) -> str | None:
    """Size plus hashes of the first and last MiB of the Inception file, or None if it is absent."""
    from srpipe.engine import weights

    p = weights.find("inception", weights_dir)
    if p is None:
        return None
    size = p.stat().st_size
    h = hashlib.sha256(str(size).encode())
    with p.open("rb") as fh:
        h.update(fh.read(1 << 20))
        fh.seek(max(0, size - (1 << 20)))
        h.update(fh.read(1 << 20))
    return h.hexdigest()


def content_key(files: list[Path], spec: FeatureSpec, weights_fp: str) -> str:
    """Hash of (file names and bytes, feature spec, decoder, weights) identifying a feature array."""
    h = hashlib.sha256()
    meta = {
        "v": CACHE_VERSION,
        "spec": spec.key_dict(),
        "decoder": "pil-rgb" if spec.whole else "srpipe",
        "weights": weights_fp,
    }
    h.update(json.dumps(meta, sort_keys=True).encode())
    for f in files:
        h.update(f.name.encode("utf-8") + b"\0")
        fh = hashlib.sha256()
        with f.open("rb") as src:
            for chunk in iter(lambda: src.read(1 << 20), b""):
                fh.update(chunk)
        h.update(fh.digest())
    return h.hexdigest()


def _cache_file(root: Path, key: str) -> Path:
    return root / key[:2] / f"{key}.npz"  # sharded like DVC's run cache


def _cache_load(path: Path, n_files: int) -> np.ndarray | None:
    try:
        with np.load(path, allow_pickle=False) as f:
            feats = f["features"]
            if int(f["n_files"]) != n_files:
                return None
            return feats.astype(np.float64)
    except Exception:  # missing, truncated or foreign file: recompute
        return None


def _cache_store(path: Path, feats: np.ndarray, n_files: int) -> None:
    from srpipe.io.imageio import atomic_write_bytes

    buf = io.BytesIO()
    # Inception outputs float32, so float32 storage is lossless.
    np.savez(buf, features=feats.astype(np.float32), n_files=np.int64(n_files))
    try:
        atomic_write_bytes(path, buf.getvalue())
    except OSError:  # a read-only or full cache must not fail the evaluation
        pass
