"""Inference machinery shared by `make-pairs` and `upscale`: precision, fp32 fallback, network loading.

- `autocast_dtype`: ``--precision`` auto|fp16|bf16|fp32 -> the autocast dtype (None: plain fp32).
  auto is fp16 on CUDA, fp32 elsewhere: fp16 rather than bf16 because its 3 more mantissa bits keep
  8-bit outputs within quantisation of fp32; fp16 on the CPU is refused (slow, and not what anyone
  wants from a CPU run).
- `autocast_fns`: a network as the (``fn``, ``fallback``) pair `srpipe.io.tiling.tiled_apply` takes:
  ``fn`` runs it under autocast, ``fallback`` reruns a batch with non-finite output in fp32 (fp16
  overflow shows up as black or NaN tiles).
- `build_network` / `network_class` / `load_network`: a network of the architecture a weights file's
  header names. The caller passes the architecture names and classes it accepts, so this tier never
  imports a stage; errors are the caller's `SrpipeError` subclass and name the file.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

import torch

from srpipe.config import INFER_PRECISIONS
from srpipe.engine import ckpt
from srpipe.errors import SrpipeError, first_line

PRECISIONS = INFER_PRECISIONS  # the old name

Net = Callable[[torch.Tensor], torch.Tensor]


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """`--precision` auto|fp16|bf16|fp32 -> autocast dtype on `device` (None: fp32).

    auto: fp16 on CUDA, fp32 on any other device. bf16 runs anywhere; fp16 needs a GPU.
    """
    if precision not in PRECISIONS:
        raise SrpipeError(
            f"--precision {precision!r}: use {', '.join(INFER_PRECISIONS[:-1])} or {INFER_PRECISIONS[-1]}"
        )
    if precision == "fp32" or (precision == "auto" and device.type != "cuda"):
        return None
    if precision == "bf16":
        return torch.bfloat16
    if device.type == "cpu":
        raise SrpipeError("--precision fp16 needs a GPU; use bf16 or fp32 on the CPU")
    return torch.float16


def autocast_fns(net: Net, dtype: torch.dtype | None, device: torch.device | str) -> tuple[Net, Net | None]:
    """(fn, fallback) for `tiled_apply`: `net` under autocast to `dtype`, and the fp32 rerun of a batch
    whose output is not finite. `dtype` None: fn runs `net` on fp32 input and there is no fallback."""
    device_type = torch.device(device).type

    def fp32(x: torch.Tensor) -> torch.Tensor:
        return net(x.float())

    if dtype is None:
        return fp32, None

    def fn(x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(device_type, dtype=dtype):
            return net(x)

    return fn, fp32


def build_network(
    cls: type[torch.nn.Module],
    args,
    state: Mapping[str, torch.Tensor],
    *,
    where: str,
    error: type[SrpipeError] = SrpipeError,
) -> torch.nn.Module:
    """``cls(**args)`` carrying `state` (strict), in eval mode on the CPU.

    `args` usually come from a file's header, so arguments the class refuses and weights that do not
    fit are the file's fault: both raise `error` naming `where`.
    """
    name = cls.__name__
    try:
        net = cls(**args)
    except (TypeError, ValueError) as e:
        raise error(
            f"{where}: its header's {name} arguments {args} are invalid ({first_line(e)}); "
            "the file is damaged or was not written by srpipe"
        ) from None
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise error(f"{where}: its weights do not fit {name}{args}: {first_line(e, 200)}") from None
    return net.eval()


def network_class(
    header: Mapping,
    archs: Mapping[str, type[torch.nn.Module]],
    *,
    where: str,
    what: str,
    default: str | None = None,
    error: type[SrpipeError] = SrpipeError,
) -> type[torch.nn.Module]:
    """The class of `archs` that `header["arch"]` names (`default` for a header without one, e.g. a
    foreign file); any other arch raises `error`: "`where` holds a X network, not `what`"."""
    arch = header.get("arch")
    if arch is None:
        arch = default
    if arch not in archs:
        raise error(f"{where} holds a {arch or 'unknown'!r} network, not {what}")
    return archs[arch]


def load_network(
    path: str | Path, archs: Mapping[str, type[torch.nn.Module]], *, what: str, error: type[SrpipeError] = SrpipeError
) -> tuple[torch.nn.Module, dict]:
    """(network in eval mode on the CPU, header) from an srpipe `.safetensors` whose header gives the
    arch (one of `archs`) and its constructor arguments (``args``; missing: the class's defaults)."""
    state, header = ckpt.load_weights(path)
    cls = network_class(header, archs, where=str(path), what=what, error=error)
    return build_network(cls, header.get("args", {}), state, where=str(path), error=error), header
