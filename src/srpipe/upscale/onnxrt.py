"""ESRGAN generators as ONNX: export with dynamic batch, height and width, and onnxruntime inference.

Export (`export_onnx`) traces the RRDBNet with torch's TorchScript-based exporter at opset `OPSET`
(17: it has every op RRDBNet needs, nearest Resize and the reshapes of pixel-unshuffle included; onnxruntime
has run it since 1.12; `--opset` picks another, 13 or later). The newer torch.export-based exporter needs the
`onnxscript` package and gains nothing for a static convolutional graph. Input ``lq`` and output
``sr`` are (N, 3, H, W) and (N, 3, H*s, W*s) with N, H and W dynamic; values in [0, 1] (the
output is not clamped; srpipe clamps after the network, as for torch models). x2/x1 models
pixel-unshuffle their input: H and W must divide by 2 (x2) or 4 (x1), which `srpipe upscale` pads to.
``--fp16`` traces the network in half precision (fp16 input, output and weights).

Every file is checked after it is written: onnxruntime (CPU) runs it on a crop of a bundled real
photo (`assets/check_photo.png`, from data/demo/real_lr/diffbir_11.jpg) and the result is compared
with the torch fp32 model: max absolute difference <= `FP32_TOL` for fp32 files, <= `FP16_TOL` for
fp16 ones (fp16 keeps 11 significant bits, ~5e-4 relative per operation, compounded over the
network's depth; two 8-bit levels bound what is visible). A file that misses its bound is deleted.

The file's metadata (``metadata_props``) carries srpipe's arch, args, scale and unshuffle factor;
`OnnxNet` reads them (a foreign ESRGAN .onnx without them: the scale is measured on a probe run).
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import torch

from srpipe.errors import SrpipeError, first_line
from srpipe.io.imageio import atomic_write_bytes

OPSET = 17
INPUT, OUTPUT = "lq", "sr"
FP32_TOL = 1e-3  # max |onnxruntime - torch| on the check photo, fp32 file, 0-1 scale
FP16_TOL = 2 / 255  # the same for an fp16 file against the fp32 torch model
CHECK_PHOTO = Path(__file__).resolve().parent / "assets" / "check_photo.png"


class OnnxError(SrpipeError):
    pass


def _need(module: str):
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise OnnxError(f"{module} is not installed: pip install 'srpipe[onnx]' (onnx and onnxruntime)") from None


def providers(device: str = "auto", index: int = 0) -> list:
    """onnxruntime execution providers for a device: ``cpu``; ``cuda`` (GPU `index`, an error without
    onnxruntime's CUDA provider); ``auto`` (CUDA when this onnxruntime has it, else the CPU)."""
    ort = _need("onnxruntime")
    have = ort.get_available_providers()
    if device == "cpu":
        return ["CPUExecutionProvider"]
    if device == "cuda" and "CUDAExecutionProvider" not in have:
        raise OnnxError(
            f"--device cuda with an ONNX model needs onnxruntime's CUDA provider "
            f"(this onnxruntime has {', '.join(have)}): pip install onnxruntime-gpu, or --device cpu"
        )
    if "CUDAExecutionProvider" in have:
        return [("CUDAExecutionProvider", {"device_id": index}), "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


def session(path_or_bytes, device: str = "auto", index: int = 0):
    ort = _need("onnxruntime")
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = torch.get_num_threads()  # the same CPU share as torch models get
    opts.log_severity_level = 3  # errors only: onnxruntime's warnings are about its own graph rewrites
    src = path_or_bytes if isinstance(path_or_bytes, bytes) else str(path_or_bytes)
    try:
        return ort.InferenceSession(src, sess_options=opts, providers=providers(device, index))
    except OnnxError:
        raise
    except Exception as e:  # onnxruntime raises its own exception types for unreadable graphs
        where = "the exported model" if isinstance(path_or_bytes, bytes) else str(path_or_bytes)
        raise OnnxError(f"onnxruntime cannot load {where}: {first_line(e, 200)}") from None


class OnnxNet:
    """An ONNX ESRGAN behind the interface `srpipe.upscale.infer` tiles with: ``net(x)``, ``scale``,
    ``unshuffle``.

    ``net(x)``: (B, 3, h, w) float tensor in [0, 1] (h, w multiples of ``unshuffle``) ->
    (B, 3, h*scale, w*scale) float32 on x's device. The tiles travel as host arrays; the session runs
    them on its provider (CUDA or CPU). ``dtype`` is the model's input type (float16 for an fp16 export).
    """

    def __init__(self, path: str | Path, *, device: str = "auto", index: int = 0):
        self.path = Path(path)
        if not self.path.is_file():
            raise OnnxError(f"ONNX model {self.path} does not exist")
        self.session = session(self.path, device, index)
        inp = self.session.get_inputs()
        if len(inp) != 1 or len(self.session.get_outputs()) != 1:
            raise OnnxError(
                f"{self.path} has {len(inp)} inputs and {len(self.session.get_outputs())} outputs; "
                "an image-to-image model has one of each"
            )
        self.input = inp[0].name
        self.dtype = np.float16 if inp[0].type == "tensor(float16)" else np.float32
        meta = self.session.get_modelmeta().custom_metadata_map
        if "srpipe_scale" in meta:
            self.scale, self.unshuffle = int(meta["srpipe_scale"]), int(meta["srpipe_unshuffle"])
            self.args = json.loads(meta.get("srpipe_args", "{}"))
        else:  # a foreign ESRGAN export: measure the scale on a probe whose sides divide by 4
            probe = self.session.run(None, {self.input: np.zeros((1, 3, 16, 16), self.dtype)})[0]
            if probe.ndim != 4 or probe.shape[2] % 16 or probe.shape[2] != probe.shape[3]:
                raise OnnxError(f"{self.path} maps a 16x16 image to shape {probe.shape}: not an SR model")
            self.scale, self.unshuffle, self.args = probe.shape[2] // 16, 4, {}
        self.provider = self.session.get_providers()[0]

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        a = x.detach().to("cpu", torch.float32).numpy().astype(self.dtype, copy=False)
        y = self.session.run(None, {self.input: np.ascontiguousarray(a)})[0]
        return torch.from_numpy(np.asarray(y, dtype=np.float32)).to(x.device)


def check_image(path: str | Path | None = None) -> torch.Tensor:
    """(1, 3, H, W) float32 photo for the export check (H, W cropped to multiples of 4)."""
    from srpipe.io.imageio import read_image

    img, _ = read_image(path or CHECK_PHOTO)
    h, w = img.shape[-2:]
    return img[:, : h // 4 * 4, : w // 4 * 4][None].contiguous()


def max_difference(onnx_model, net: torch.nn.Module, image: torch.Tensor) -> float:
    """max |onnxruntime(onnx_model) - net| (torch, fp32) on `image`, before clamping, on the 0-1 scale."""
    sess = onnx_model if isinstance(onnx_model, OnnxNet) else OnnxNet(onnx_model, device="cpu")
    with torch.no_grad():
        want = net.float().eval()(image.float())
    got = sess(image)
    if got.shape != want.shape:
        raise OnnxError(f"onnxruntime gave shape {tuple(got.shape)}, torch {tuple(want.shape)}")
    return float((got - want).abs().max())


def export_onnx(
    model, out: str | Path, *, fp16: bool = False, opset: int = OPSET, check_photo: str | Path | None = None
) -> tuple[Path, float]:
    """Write `model` (any ESRGAN file or sr-train run folder) as ONNX; returns (path, checked max difference).

    Raises OnnxError (and leaves no file) when onnxruntime and torch disagree beyond the bound.
    """
    from srpipe.upscale import interop

    onnx = _need("onnx")
    _need("onnxruntime")
    if opset < 13:
        raise OnnxError(f"--opset {opset}: use 13 or later (17 by default)")
    net, args, header = interop.load_generator(model)
    dtype = torch.float16 if fp16 else torch.float32
    unit = net.unshuffle
    dummy = torch.rand(1, 3, 8 * unit, 8 * unit, generator=torch.Generator().manual_seed(0), dtype=dtype)
    traced = interop.build(args, net.state_dict(), where=str(model)).to(dtype)
    buf = io.BytesIO()
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice (see the module docstring)
        torch.onnx.export(
            traced,
            (dummy,),
            buf,
            dynamo=False,
            opset_version=opset,
            input_names=[INPUT],
            output_names=[OUTPUT],
            do_constant_folding=True,
            dynamic_axes={
                INPUT: {0: "batch", 2: "height", 3: "width"},
                OUTPUT: {0: "batch", 2: "height_out", 3: "width_out"},
            },
        )
    proto = onnx.load_from_string(buf.getvalue())
    meta = {
        "srpipe_arch": interop.ARCH,
        "srpipe_args": json.dumps(args, sort_keys=True),
        "srpipe_scale": str(net.scale),
        "srpipe_unshuffle": str(unit),
        "srpipe_precision": "fp16" if fp16 else "fp32",
    }
    for k, v in meta.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = k, v
    proto.producer_name = "srpipe"
    onnx.checker.check_model(proto)
    out = Path(out)
    try:
        atomic_write_bytes(out, proto.SerializeToString())
    except OSError as e:
        raise OnnxError(f"cannot write {out}: {e.strerror or e}") from e
    # checked from the file as written, against the fp32 torch model
    tol = FP16_TOL if fp16 else FP32_TOL
    try:
        diff = max_difference(out, net, check_image(check_photo))
    except BaseException:
        out.unlink(missing_ok=True)
        raise
    if not diff <= tol:
        out.unlink(missing_ok=True)
        raise OnnxError(
            f"onnxruntime and torch differ by {diff:.3g} (> {tol:.3g}) on the check photo; "
            f"nothing written: try another --opset, or report it with the model file"
        )
    return out, diff
