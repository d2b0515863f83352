"""Weights files and resumable checkpoints.

- **Weights** are `.safetensors` with the architecture name and its constructor arguments in the
  header metadata (``{"arch": "RRDBNet", "args": "{...json...}", "srpipe": "0.1.0", ...}``), so a
  file alone rebuilds its network, and spandrel/chaiNNer read the tensors directly.
- **Checkpoints** for resume are step-numbered folders ``ckpt/step_00001234/`` holding one
  `.safetensors` per network and ``state.pt`` (optimizer/scheduler/RNG state: plain containers of
  tensors and numbers, loaded with ``weights_only=True``). A folder is built under a temporary name
  and renamed into place; the ``latest`` pointer is written last, atomically. A crash at any moment
  leaves either the previous checkpoint or the new one, never weights paired with the wrong state.

Every write goes through a temporary file and ``os.replace``; save errors raise.
"""

from __future__ import annotations

import io
import json
import os
import shutil
from pathlib import Path

import torch

from srpipe import __version__
from srpipe.errors import SrpipeError
from srpipe.imageio import atomic_write_bytes


class CheckpointError(SrpipeError):
    pass


def unwrap(module: torch.nn.Module) -> torch.nn.Module:
    """The plain module under DDP (`.module`) and torch.compile (`._orig_mod`) wrappers."""
    while True:
        if hasattr(module, "_orig_mod"):
            module = module._orig_mod
        elif isinstance(module, torch.nn.parallel.DistributedDataParallel):
            module = module.module
        else:
            return module


def _fault(point: str) -> None:
    """Fault-injection hook for crash tests: ``SRPIPE_FAULT=<point>`` kills this process here."""
    if os.environ.get("SRPIPE_FAULT") == point:
        os.kill(os.getpid(), 9)


def _plain(state: dict) -> dict[str, torch.Tensor]:
    out = {}
    for k, v in state.items():
        if not isinstance(v, torch.Tensor):
            raise CheckpointError(f"state entry {k} is not a tensor")
        out[k] = v.detach().to("cpu").contiguous()
    return out


def save_weights(path: str | Path, state: dict, *, arch: str, args: dict, meta: dict | None = None) -> None:
    """Write a `.safetensors` weights file with arch/args metadata, atomically. NaN/Inf weights raise."""
    from safetensors.torch import save

    tensors = _plain(state)
    bad = [k for k, v in tensors.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        raise CheckpointError(f"refusing to save {path}: non-finite values in {', '.join(bad[:3])}")
    header = {"arch": arch, "args": json.dumps(args, sort_keys=True), "srpipe": __version__}
    for k, v in (meta or {}).items():
        header[k] = v if isinstance(v, str) else json.dumps(v, sort_keys=True)
    data = save(tensors, metadata=header)
    try:
        atomic_write_bytes(path, data)
    except OSError as e:
        raise CheckpointError(f"cannot write {path}: {e.strerror or e}") from e


def read_header(path: str | Path) -> dict:
    """Metadata of a srpipe `.safetensors` file, with `args` decoded."""
    from safetensors import safe_open

    p = Path(path)
    if not p.is_file():
        raise CheckpointError(f"weights file {p} does not exist")
    try:
        with safe_open(str(p), framework="pt") as f:
            meta = dict(f.metadata() or {})
    except Exception as e:
        raise CheckpointError(f"{p} is not a readable .safetensors file ({str(e).splitlines()[0]})") from e
    if "args" in meta:
        meta["args"] = json.loads(meta["args"])
    return meta


def load_weights(path: str | Path, device: str | torch.device = "cpu") -> tuple[dict, dict]:
    """(state dict, header) of a `.safetensors` weights file."""
    from safetensors.torch import load_file

    header = read_header(path)
    return load_file(str(path), device=str(device)), header


def save_state(path: str | Path, state: dict) -> None:
    """Resume state (plain containers of tensors/numbers/strings) via torch.save, atomically."""
    buf = io.BytesIO()
    torch.save(state, buf)
    try:
        atomic_write_bytes(path, buf.getvalue())
    except OSError as e:
        raise CheckpointError(f"cannot write {path}: {e.strerror or e}") from e


def load_state(path: str | Path) -> dict:
    """Load resume state with ``weights_only=True``: no code in the file can run."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise CheckpointError(f"cannot load training state {path}: {str(e).splitlines()[0]}") from e


def rng_state() -> dict:
    s = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        s["cuda"] = torch.cuda.get_rng_state_all()
    return s


def set_rng_state(s: dict) -> None:
    torch.set_rng_state(s["torch"])
    if "cuda" in s and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(s["cuda"])


def save_checkpoint(ckpt_dir: str | Path, step: int, nets: dict[str, tuple[dict, str, dict]], state: dict, *, keep: int = 2) -> Path:
    """Write ``ckpt_dir/step_<step>/`` with `{name}.safetensors` per net and `state.pt`, then `latest`.

    Args:
        nets: name -> (state dict, arch name, arch args).
        state: optimizer/scheduler/RNG/step state, plain containers only.
        keep: how many step folders to keep (older ones are deleted after `latest` moves on).
    """
    root = Path(ckpt_dir)
    name = f"step_{step:08d}"
    final = root / name
    tmp = root / f".{name}.tmp"
    try:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        for n, (sd, arch, args) in nets.items():
            save_weights(tmp / f"{n}.safetensors", sd, arch=arch, args=args)
        _fault("ckpt-mid")
        save_state(tmp / "state.pt", {**state, "step": step})
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
        _fault("ckpt-before-latest")
        atomic_write_bytes(root / "latest", (name + "\n").encode())
    except OSError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        raise CheckpointError(f"cannot write checkpoint {final}: {e.strerror or e}") from e
    steps = sorted(p for p in root.glob("step_*") if p.is_dir() and p.name != name)
    for old in steps[: max(0, len(steps) - (keep - 1))]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def latest_checkpoint(ckpt_dir: str | Path) -> Path | None:
    """The folder `latest` points to, or None when there is no complete checkpoint."""
    root = Path(ckpt_dir)
    ptr = root / "latest"
    if not ptr.is_file():
        return None
    folder = root / ptr.read_text().strip()
    if not (folder / "state.pt").is_file():
        raise CheckpointError(f"{ptr} points to {folder}, which is incomplete; delete {root} or use --restart")
    return folder


def load_checkpoint(folder: str | Path) -> tuple[dict[str, dict], dict]:
    """({net name: state dict}, state) from a checkpoint folder."""
    folder = Path(folder)
    nets = {p.stem: load_weights(p)[0] for p in sorted(folder.glob("*.safetensors"))}
    return nets, load_state(folder / "state.pt")
