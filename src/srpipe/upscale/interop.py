"""ESRGAN weights in and out: every common key layout read, BasicSR/spandrel-compatible files written.

Reading (`load_generator`) accepts, spandrel-style (`__helpers/canonicalize.py`, `ESRGAN/__init__.py`):

- srpipe `.safetensors` (BasicSR key names, arch + args in the header);
- BasicSR / Real-ESRGAN: ``conv_first``, ``body.N.rdbK.convM``, ``conv_body``, ``conv_up1/2``,
  ``conv_hr``, ``conv_last`` (x2/x1 models pixel-unshuffle their input: 4x/16x input channels);
- old BasicSR / ESRGAN-FS / BSRGAN / RealSR: ``RRDB_trunk.N.RDBK.convM``, ``trunk_conv``,
  ``upconv1/2``, ``HRconv``;
- the original ESRGAN repo: ``model.0``, ``model.1.sub.N.RDBK.convM.0``, ``model.3`` ...;

inside ``params_ema`` / ``params`` / ``state_dict`` / ... wrappers, with ``module.`` / ``netG.``
prefixes. Width, block count, growth and scale come from the tensor shapes, never from pickled
objects: `.pth` files are read with ``torch.load(weights_only=True)`` only.

Writing: our `.safetensors` already uses BasicSR names, which spandrel (chaiNNer, ComfyUI) detects;
`export_pth` writes BasicSR's ``{"params": ..., "params_ema": ...}`` `.pth`. x3 is srpipe's own
layout (one nearest-x3 step): spandrel would take it for a x2 model and load it *silently wrong*, so
x3 weights files carry a key prefix that no other loader recognises, and exporting them is refused.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch

from srpipe.engine import ckpt, inference
from srpipe.errors import SrpipeError, first_line
from srpipe.log import info
from srpipe.upscale import contract
from srpipe.upscale.archs import RRDBNet

ARCH = "RRDBNet"
# Keys of x3 weights files start with this, so that spandrel & co. refuse them instead of building
# a x2 network from them (their scale detection counts upsampling convs: one means x2).
X3_PREFIX = "srpipe_x3."
_WRAPPERS = (
    "params_ema",
    "params-ema",
    "params",
    "model_state_dict",
    "state_dict",
    "model",
    "net",
    "netG",
    "generator",
)
_PREFIXES = ("module.", "netG.", "_orig_mod.")


class ModelFormatError(SrpipeError):
    """A weights file srpipe cannot read as an ESRGAN generator; the message names the file."""


def canonicalize(obj) -> dict[str, torch.Tensor]:
    """The tensor dict inside common wrappers, with ``module.``/``netG.`` prefixes removed."""
    sd = obj
    for _ in range(3):  # wrappers can nest ({"state_dict": {"params_ema": ...}})
        if not isinstance(sd, dict):
            break
        inner = next((sd[k] for k in _WRAPPERS if isinstance(sd.get(k), dict)), None)
        if inner is None and len(sd) == 1 and isinstance(next(iter(sd.values())), dict):
            inner = next(iter(sd.values()))
        if inner is None:
            break
        sd = inner
    if not isinstance(sd, dict):
        return {}
    sd = {k: v for k, v in sd.items() if isinstance(v, torch.Tensor)}
    for prefix in _PREFIXES + (X3_PREFIX,):
        if sd and all(k.startswith(prefix) for k in sd):
            sd = {k[len(prefix) :]: v for k, v in sd.items()}
    return sd


_OLD_BLOCK = re.compile(r"^RRDB_trunk\.(\d+)\.RDB(\d)\.conv(\d)\.(weight|bias)$")
_ORIG_BLOCK = re.compile(r"^model\.1\.sub\.(\d+)\.RDB(\d)\.conv(\d)\.0\.(weight|bias)$")
_ORIG_CONV = re.compile(r"^model\.(\d+)\.(weight|bias)$")


def to_basicsr(sd: dict[str, torch.Tensor], *, where: str = "state dict") -> dict[str, torch.Tensor]:
    """Rename any known ESRGAN layout to BasicSR's names (a BasicSR dict is returned unchanged)."""
    if "conv_first.weight" in sd and "body.0.rdb1.conv1.weight" in sd:
        return dict(sd)
    if any(".conv1x1." in k for k in sd):
        raise ModelFormatError(f"{where} is an ESRGAN+ model (conv1x1 layers), which srpipe's RRDBNet cannot run")
    out: dict[str, torch.Tensor] = {}
    if "RRDB_trunk.0.RDB1.conv1.weight" in sd:  # old BasicSR, ESRGAN-FS, BSRGAN, RealSR
        names = {
            "conv_first": "conv_first",
            "trunk_conv": "conv_body",
            "upconv1": "conv_up1",
            "upconv2": "conv_up2",
            "HRconv": "conv_hr",
            "conv_last": "conv_last",
        }
        for k, v in sd.items():
            m = _OLD_BLOCK.match(k)
            if m:
                out[f"body.{m[1]}.rdb{m[2]}.conv{m[3]}.{m[4]}"] = v
                continue
            layer, _, kind = k.rpartition(".")
            if layer not in names:
                raise ModelFormatError(f"{where}: unexpected key {k} in an old-layout (RRDB_trunk) ESRGAN")
            out[f"{names[layer]}.{kind}"] = v
        return out
    if "model.0.weight" in sd and "model.1.sub.0.RDB1.conv1.0.weight" in sd:  # original ESRGAN repo
        blocks = {int(m[1]) for k in sd if (m := _ORIG_BLOCK.match(k))}
        nb = max(blocks) + 1
        convs: dict[int, dict[str, torch.Tensor]] = {}
        for k, v in sd.items():
            if m := _ORIG_BLOCK.match(k):
                out[f"body.{m[1]}.rdb{m[2]}.conv{m[3]}.{m[4]}"] = v
            elif k in (f"model.1.sub.{nb}.weight", f"model.1.sub.{nb}.bias"):
                out[f"conv_body.{k.rsplit('.', 1)[1]}"] = v
            elif m := _ORIG_CONV.match(k):
                convs.setdefault(int(m[1]), {})[m[2]] = v
            else:
                raise ModelFormatError(f"{where}: unexpected key {k} in an original-layout (model.N) ESRGAN")
        tail = sorted(i for i in convs if i > 1)  # upconvs, then HR conv, then last conv
        ups = tail[:-2]
        if len(ups) != 2:
            raise ModelFormatError(
                f"{where} is an original-layout ESRGAN with {len(ups)} upsampling step(s); srpipe's RRDBNet runs the "
                "BasicSR layout (two x2 steps, pixel-unshuffle for x2/x1) only"
            )
        for name, idx in zip(("conv_up1", "conv_up2", "conv_hr", "conv_last"), tail):
            for kind, v in convs[idx].items():
                out[f"{name}.{kind}"] = v
        for kind, v in convs[0].items():
            out[f"conv_first.{kind}"] = v
        return out
    shown = ", ".join(sorted(sd)[:6]) or "no tensors"
    raise ModelFormatError(f"{where} is not an ESRGAN/RRDBNet state dict (keys: {shown} ...)")


def infer_args(sd: dict[str, torch.Tensor], *, where: str = "state dict") -> dict:
    """`RRDBNet` keyword arguments read from the tensor shapes of a BasicSR-layout dict."""
    try:
        first = sd["conv_first.weight"]
        out_ch = sd["conv_last.weight"].shape[0]
        grow = sd["body.0.rdb1.conv1.weight"].shape[0]
    except KeyError as e:
        raise ModelFormatError(f"{where} lacks {e.args[0]}; not an RRDBNet") from None
    num_block = 1 + max(int(k.split(".")[1]) for k in sd if k.startswith("body."))
    in_ch = first.shape[1]
    if "conv_up2.weight" not in sd:
        scale, num_in = 3, in_ch
    elif in_ch == 16 * out_ch:  # pixel-unshuffle by 4 (BasicSR x1), spandrel's rule
        scale, num_in = 1, in_ch // 16
    elif in_ch == 4 * out_ch:  # pixel-unshuffle by 2 (BasicSR x2)
        scale, num_in = 2, in_ch // 4
    else:
        scale, num_in = 4, in_ch
    return {
        "scale": scale,
        "num_in_ch": num_in,
        "num_out_ch": out_ch,
        "num_feat": first.shape[0],
        "num_block": num_block,
        "num_grow_ch": grow,
    }


def read_state(path: str | Path) -> tuple[dict[str, torch.Tensor], dict]:
    """(BasicSR-layout state dict, safetensors header or {}) of any supported weights file."""
    p = Path(path)
    if not p.is_file():
        raise ModelFormatError(f"weights file {p} does not exist")
    header: dict = {}
    if p.suffix.lower() == ".safetensors":
        raw, header = ckpt.load_weights(p)
    else:
        try:
            raw = torch.load(p, map_location="cpu", weights_only=True)
        except Exception as e:  # pickled classes, truncated zip, not a torch file at all
            raise ModelFormatError(
                f"cannot read {p} with torch.load(weights_only=True) ({first_line(e)}); "
                "srpipe never unpickles code: re-save it as a plain state dict or .safetensors"
            ) from None
    sd = canonicalize(raw)
    return to_basicsr(sd, where=str(p)), header


def build(args: dict, sd: dict[str, torch.Tensor], *, where: str) -> RRDBNet:
    """An RRDBNet with `args` carrying `sd` (strict), in eval mode."""
    return inference.build_network(RRDBNet, args, sd, where=where, error=ModelFormatError)


def resolve_model(path: str | Path) -> Path:
    """A weights file, or the best model of an `sr-train` run folder (gan, else psnr)."""
    p = Path(path)
    if p.is_dir():
        names = [contract.weights_file(phase) for phase in contract.MODEL_ORDER]
        for name in names:
            if (p / name).is_file():
                return p / name
        raise ModelFormatError(f"{p} holds neither {' nor '.join(names)}; is it an sr-train run folder?")
    return p


def load_generator(path: str | Path) -> tuple[RRDBNet, dict, dict]:
    """(RRDBNet in eval mode on the CPU, its constructor args, file header) from any supported file or run folder."""
    p = resolve_model(path)
    sd, header = read_state(p)
    args = infer_args(sd, where=str(p))
    # a file without an arch in its header (BasicSR, Real-ESRGAN ...) is taken for an RRDBNet
    inference.network_class(
        header,
        {ARCH: RRDBNet},
        where=str(p),
        what="an ESRGAN generator (RRDBNet)",
        default=ARCH,
        error=ModelFormatError,
    )
    if header.get("arch") == ARCH and isinstance(header.get("args"), dict):
        args = header["args"]  # our own file: the header is authoritative (and x3 is only known from it)
    return build(args, sd, where=str(p)), args, header


def file_state(sd: dict[str, torch.Tensor], args: dict) -> dict[str, torch.Tensor]:
    """The tensors as written to a `.safetensors` file: x3 keys get the guard prefix."""
    if args.get("scale") == 3:
        return {X3_PREFIX + k: v for k, v in sd.items()}
    return dict(sd)


def save_generator(path: str | Path, sd: dict[str, torch.Tensor], args: dict, meta: dict | None = None) -> Path:
    """Write generator weights as `.safetensors` (BasicSR names, arch + args header), atomically."""
    ckpt.save_weights(path, file_state(sd, args), arch=ARCH, args=args, meta=meta)
    return Path(path)


def _refuse_x3(args: dict, what: str) -> None:
    if args.get("scale") == 3:
        raise ModelFormatError(
            f"{what} is a x3 RRDBNet, srpipe's own layout: BasicSR, Real-ESRGAN and spandrel cannot read x3 ESRGANs "
            "(they would build a x2 network); keep the .safetensors for srpipe, or train at x2 or x4 to export"
        )


def export_pth(path: str | Path, sd: dict[str, torch.Tensor], args: dict) -> Path:
    """Write BasicSR's `{"params": sd, "params_ema": sd}` `.pth` (one copy of the tensors on disk).

    Both keys hold the EMA weights: BasicSR loads ``params`` unless told otherwise, Real-ESRGAN and
    spandrel prefer ``params_ema``; torch.save stores tensors shared by both keys once.
    """
    import io

    from srpipe.io.imageio import atomic_write_bytes

    _refuse_x3(args, str(path))
    tensors = {k: v.detach().cpu().contiguous() for k, v in sd.items()}
    buf = io.BytesIO()
    torch.save({"params": tensors, "params_ema": tensors}, buf)
    try:
        atomic_write_bytes(path, buf.getvalue())
    except OSError as e:
        raise SrpipeError(f"cannot write {path}: {e.strerror or e}") from e
    return Path(path)


EXPORT_FORMATS = {".pth": "pth", ".safetensors": "safetensors", ".onnx": "onnx"}


def export(
    model: str | Path, out: str | Path, *, fmt: str | None = None, fp16: bool = False, opset: int | None = None
) -> Path:
    """Convert any supported ESRGAN file (or run folder) to BasicSR `.pth`, srpipe `.safetensors` or ONNX.

    `fmt` pth|safetensors|onnx (None: from the suffix of `out`, which must agree with it); `fp16` and
    `opset` apply to ONNX (`srpipe.upscale.onnxrt`, checked against torch after writing).
    """
    out = Path(out)
    suffix = out.suffix.lower()
    if fmt is None:
        if suffix not in EXPORT_FORMATS:
            raise SrpipeError(f"--out {out}: use a .pth (BasicSR), .safetensors or .onnx file name, or --format")
        fmt = EXPORT_FORMATS[suffix]
    elif fmt not in EXPORT_FORMATS.values():
        raise SrpipeError(f"--format {fmt!r}: use pth, safetensors or onnx")
    elif EXPORT_FORMATS.get(suffix) != fmt:
        raise SrpipeError(f"--format {fmt} with --out {out}: name the file *.{fmt}")
    if fmt != "onnx" and (fp16 or opset is not None):
        raise SrpipeError("--fp16 and --opset apply to --format onnx only")
    src = resolve_model(model)
    if fmt == "onnx":
        from srpipe.upscale import onnxrt

        path, diff = onnxrt.export_onnx(src, out, fp16=fp16, opset=opset or onnxrt.OPSET)
        info(
            f"checked with onnxruntime on a real photo: max |onnx - torch| = {diff:.2g} "
            f"(bound {onnxrt.FP16_TOL if fp16 else onnxrt.FP32_TOL:.2g})"
        )
        return path
    net, args, header = load_generator(src)
    sd = net.state_dict()
    if fmt == "pth":
        return export_pth(out, sd, args)
    _refuse_x3(args, str(src))  # an x3 .safetensors for other tools would be read as x2
    keep = {k: v for k, v in header.items() if k not in ("arch", "args", "srpipe")}
    return save_generator(out, sd, args, meta={**keep, "converted_from": src.name})
