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
from srpipe.errors import SrpipeError, first_line, write_failed
from srpipe.io import _faults
from srpipe.io.imageio import atomic_write_bytes


STATE = "state.pt"  # a checkpoint's optimizer/RNG state and step, beside its weights


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
        raise CheckpointError(write_failed(path, e)) from e


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
        raise CheckpointError(f"{p} is not a readable .safetensors file ({first_line(e)})") from e
    if "args" in meta:
        # The header is whatever the file's author wrote: arguments that are not a JSON object would
        # otherwise surface as a TypeError deep inside a network constructor.
        try:
            meta["args"] = json.loads(meta["args"])
        except json.JSONDecodeError as e:
            raise CheckpointError(
                f"{p}: its header's network arguments are not valid JSON ({first_line(e)}); "
                "the file is damaged or was not written by srpipe"
            ) from None
        if not isinstance(meta["args"], dict):
            raise CheckpointError(
                f"{p}: its header's network arguments are not a JSON object; "
                "the file is damaged or was not written by srpipe"
            )
    return meta


def load_weights(path: str | Path, device: str | torch.device = "cpu") -> tuple[dict, dict]:
    """(state dict, header) of a `.safetensors` weights file."""
    from safetensors.torch import load_file

    header = read_header(path)
    return load_file(str(path), device=str(device)), header


_PLAIN = (str, int, float, bool, type(None), bytes, torch.Tensor, torch.Size, torch.dtype, torch.device)


def _first_non_plain(obj, where: str = "state") -> str | None:
    """Where the first value outside plain containers of tensors/numbers/strings sits, or None."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            bad = _first_non_plain(v, f"{where}[{k!r}]")
            if bad:
                return bad
        return None
    if isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            bad = _first_non_plain(v, f"{where}[{i}]")
            if bad:
                return bad
        return None
    return None if isinstance(obj, _PLAIN) else f"{where} ({type(obj).__module__}.{type(obj).__qualname__})"


def save_state(path: str | Path, state: dict) -> None:
    """Resume state (plain containers of tensors/numbers/strings) via torch.save, atomically.

    torch.save pickles anything, but `load_state` (weights_only) refuses e.g. numpy arrays: such a
    state would save fine and fail only at resume, hours later. So anything unusual is checked by
    loading it back the way resume will, and refused now.
    """
    buf = io.BytesIO()
    torch.save(state, buf)
    suspect = _first_non_plain(state)
    if suspect is not None:
        try:
            torch.load(io.BytesIO(buf.getvalue()), map_location="cpu", weights_only=True)
        except Exception as e:
            raise CheckpointError(
                f"refusing to save {path}: {suspect} cannot be loaded back with weights_only=True "
                f"({str(e).splitlines()[0][:120]}); store tensors, numbers, strings, lists or dicts"
            ) from None
    try:
        atomic_write_bytes(path, buf.getvalue())
    except OSError as e:
        raise CheckpointError(write_failed(path, e)) from e


def load_state(path: str | Path) -> dict:
    """Load resume state with ``weights_only=True``: no code in the file can run."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise CheckpointError(f"cannot load training state {path}: {first_line(e)}") from e


def rng_state() -> dict:
    s = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        s["cuda"] = torch.cuda.get_rng_state_all()
    return s


def set_rng_state(s: dict) -> None:
    torch.set_rng_state(s["torch"])
    if "cuda" in s and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(s["cuda"])


def save_checkpoint(
    ckpt_dir: str | Path, step: int, nets: dict[str, tuple[dict, str, dict]], state: dict, *, keep: int = 2
) -> Path:
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
    old = root / f".{name}.old"
    try:
        root.mkdir(parents=True, exist_ok=True)
        for stale in root.glob(".step_*.tmp"):  # left by a crash mid-save: never complete
            shutil.rmtree(stale, ignore_errors=True)
        tmp.mkdir()
        for n, (sd, arch, args) in nets.items():
            save_weights(tmp / f"{n}.safetensors", sd, arch=arch, args=args)
        _faults.at("ckpt-mid")
        save_state(tmp / STATE, {**state, "step": step})
        if final.exists():  # the same step saved again (e.g. a signal right after a periodic save)
            shutil.rmtree(old, ignore_errors=True)
            os.replace(final, old)
        os.replace(tmp, final)
        _faults.at("ckpt-before-latest")
        atomic_write_bytes(root / "latest", (name + "\n").encode())
    except (OSError, CheckpointError) as e:
        shutil.rmtree(tmp, ignore_errors=True)
        cause = e if isinstance(e, OSError) else e.__cause__
        if not isinstance(cause, OSError):  # a refused state, not the disk: its own message says why
            raise
        # Name the checkpoint, not a temporary file inside it, and say what survived.
        prev = f"{root / 'latest'} still points to the previous checkpoint" if (root / "latest").is_file() else ""
        raise CheckpointError(write_failed(f"checkpoint {final}", cause, kept=prev)) from e
    for aside in root.glob(".step_*.old"):  # `latest` has moved on: copies moved aside are not needed
        shutil.rmtree(aside, ignore_errors=True)
    # Keep the newest `keep` folders of this run's timeline. Folders with a higher step than the one
    # just saved come from a run that crashed after writing them but before moving `latest`, and
    # was resumed from an earlier step: they are not part of this history any more.
    steps = _step_folders(root)
    newer = [p for p in steps if _step_of(p) > step]
    older = [p for p in steps if _step_of(p) < step]
    for stale in newer + older[: max(0, len(older) - (keep - 1))]:
        shutil.rmtree(stale, ignore_errors=True)
    return final


def _step_of(p: Path) -> int:
    return int(p.name[len("step_") :])


def _step_folders(root: Path) -> list[Path]:
    """`step_<n>` folders in step order (numeric: past 10^8 steps the names stop sorting)."""
    found = [p for p in root.glob("step_*") if p.is_dir() and p.name[len("step_") :].isdigit()]
    return sorted(found, key=_step_of)


def latest_checkpoint(ckpt_dir: str | Path) -> Path | None:
    """The folder `latest` points to, or None when there is no complete checkpoint."""
    root = Path(ckpt_dir)
    ptr = root / "latest"
    if not ptr.is_file():
        return None
    try:
        folder = root / ptr.read_text().strip()
    except (OSError, UnicodeDecodeError) as e:
        raise CheckpointError(f"cannot read {ptr} ({e}); delete {root} or use --restart") from None
    if folder.parent == root and folder.name.startswith("step_") and (folder / STATE).is_file():
        return folder
    # `latest` names a folder that is gone: a crash while the same step was being saved again, after
    # the old copy was moved aside. Put that copy back.
    aside = root / f".{folder.name}.old"
    if folder.parent == root and (aside / STATE).is_file():
        try:
            os.replace(aside, folder)
            return folder
        except OSError:
            return aside
    # Otherwise every step_* folder is complete (renamed into place only after its state.pt was
    # written), so the newest one is a consistent checkpoint.
    complete = [p for p in _step_folders(root) if (p / STATE).is_file()]
    if complete:
        return complete[-1]
    raise CheckpointError(f"{ptr} points to {folder}, which is incomplete; delete {root} or use --restart")


def load_checkpoint(folder: str | Path) -> tuple[dict[str, dict], dict]:
    """({net name: state dict}, state) from a checkpoint folder."""
    folder = Path(folder)
    nets = {p.stem: load_weights(p)[0] for p in sorted(folder.glob("*.safetensors"))}
    return nets, load_state(folder / STATE)
