"""`upscale`: run an ESRGAN generator over images of any size, tile by tile.

The image stays in host memory; only batches of tiles go to the device (`srpipe.io.tiling`). By
default each tile sees `DEFAULT_PAD` pixels of real context on every side and only its core is kept
(``blend=False``, as Real-ESRGAN's ``--tile_pad``): RRDBNet's theoretical receptive field (hundreds
of pixels for 23 blocks, `net.receptive_radius`) is far larger than any practical pad, but its
effective one is small. With a pad of at least `net.receptive_radius` the tiled result equals the
whole-image result exactly (tested). ``blend=True`` feathers overlapping tiles instead.

Measured difference to an untiled run on real photos (bundled `data/demo/real_lr/diffbir_5.jpg`
515x386 and `diffbir_11.jpg` 360x360, the `tiny` preset's GAN model, 2 blocks, radius 34), on
the 0-255 scale:

    core crop, tile 128, pad 16 or 32 ........ max < 0.005   (identical 8-bit output)
    feathered, tile 256, pad 32 .............. max 0.53, mean 0.0015
    feathered, tile 128, pad 16 .............. max 1.10, mean 0.006
    feathered, tile  64, pad 16 .............. max 1.47, mean 0.015

Cropping beats feathering at equal pad: a kept pixel always has `pad` pixels of context, while a
feathered pixel also mixes in outputs computed at a tile's very edge. The full 23-block network
(larger effective field) has not been measured yet (needs a trained paper-preset model).

Alpha planes are upscaled separately (as a gray image through the same network, Real-ESRGAN's
default) and kept; 16-bit inputs give 16-bit outputs (and run in fp32); gray stays gray.

ONNX models (``--model FILE.onnx``, `srpipe.upscale.onnxrt.OnnxNet`) run through onnxruntime (the
CUDA provider when available and not ``--device cpu``) inside the same tiling, alpha, 16-bit, gray
and metadata handling: only the network call differs. Their precision is the file's (fp32, or fp16
from ``srpipe export --fp16``); the tiles are handed over as host arrays.

Speed on a GPU: fp16 autocast (a batch with non-finite output is rerun in fp32),
channels-last, several tiles per forward pass (`tiling.auto_batch`, within a device-memory budget), and
stitching on the host that overlaps the next batch's compute (`srpipe.io.tiling`). `torch.compile` is
a switch: it costs a compile per tile shape and pays off on large folders.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from srpipe.config import InferPrecision
from srpipe.engine import folders, inference
from srpipe.errors import SrpipeError
from srpipe.io.imageio import ImageInfo, list_sources, read_image, write_image
from srpipe.log import info, warn
from srpipe.io.tiling import auto_batch, tiled_apply
from srpipe.upscale import interop

Precision = InferPrecision
DEFAULT_TILE = 256  # input pixels per tile side: ~3 GB of activations for the full x4 net in fp16
DEFAULT_PAD = 32  # context pixels per tile side (Real-ESRGAN uses 10); see the measurements above
MIN_TILE = 32  # smallest tile the CUDA out-of-memory back-off goes down to


def prepare(net: torch.nn.Module, device: torch.device, *, compile: bool = False) -> torch.nn.Module:
    """`net` for inference on `device`: eval mode, channels-last on CUDA, `torch.compile`d if asked.

    Keeps `scale` and `unshuffle` readable on the result (the compiled wrapper forwards attributes).
    """
    net = net.eval().to(device)
    if device.type == "cuda":
        net = net.to(memory_format=torch.channels_last)
    return torch.compile(net, dynamic=None) if compile else net


def make_fns(net: torch.nn.Module, unit: int, autocast: torch.dtype | None, device: torch.device):
    """(fn, fallback) mapping (B, C, h, w) -> (B, C, h*s, w*s) in [0, 1]: pads h, w to the pixel-unshuffle
    `unit` (reflect), runs `net` under `autocast` (None: fp32), crops.

    `fallback` (None without autocast) reruns a batch with non-finite output in fp32, as the `fallback`
    of `srpipe.io.tiling`: fp16 overflow gives black or NaN images (Real-ESRGAN #632/#330).
    """
    s = net.scale

    def padded(x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        ph, pw = -h % unit, -w % unit
        if ph or pw:
            x = F.pad(x, (0, pw, 0, ph), mode="reflect" if min(h, w) > max(ph, pw) else "replicate")
        return net(x)[..., : h * s, : w * s].float().clamp_(0, 1)

    return inference.autocast_fns(padded, autocast, device)


def upscale_tensor(
    net,
    img: torch.Tensor,
    *,
    tile: int = DEFAULT_TILE,
    pad: int = DEFAULT_PAD,
    blend: bool = False,
    device="cpu",
    autocast: torch.dtype | None = None,
    batch: int = 1,
) -> torch.Tensor:
    """(C, H, W) float in [0, 1] on the host -> (C, H*s, W*s), tiled; tile <= 0 runs the whole image.

    `batch` tiles per forward pass (0: `auto_batch`). On CUDA out-of-memory the tile size halves and
    the image is retried (down to MIN_TILE).
    """
    device = torch.device(device)
    unit = net.unshuffle
    fn, fp32 = make_fns(net, unit, autocast, device)
    cl = device.type == "cuda"
    while True:
        try:
            if tile <= 0:
                with torch.no_grad():
                    x = img[None].to(device)
                    y = fn(x.contiguous(memory_format=torch.channels_last) if cl else x)
                    if fp32 is not None and not bool(torch.isfinite(y).all()):
                        y = fp32(x)
                    return y[0].cpu()
            # multiples of the unshuffle factor keep every tile on the whole image's pixel-unshuffle grid
            t = -(-tile // unit) * unit
            p = -(-pad // unit) * unit
            b = batch or auto_batch(device, (t + 2 * p) * net.scale)
            return tiled_apply(
                img,
                fn,
                scale=net.scale,
                tile=t,
                pad=p,
                batch=b,
                device=device,
                blend=blend,
                channels_last=cl,
                fallback=fp32,
            )
        except torch.cuda.OutOfMemoryError:
            torch.cuda.empty_cache()
            cur = tile if tile > 0 else max(img.shape[-2:])
            if cur <= MIN_TILE:
                raise SrpipeError(f"out of GPU memory even with {MIN_TILE}-pixel tiles; use --device cpu") from None
            nxt = max(MIN_TILE, cur // 2)  # 45 -> 32, not 22: try the smallest tile before giving up
            warn(f"CUDA out of memory with tile {tile}; retrying with tile {nxt}")
            tile = nxt


def load_model(
    model, dev: torch.device, *, precision: Precision = "auto", compile: bool = False, requested: str = "auto"
):
    """(network, device the tiles go to) for `upscale` on `dev`: a torch RRDBNet from any weights file
    or run folder, or an `onnxrt.OnnxNet` for a ``.onnx`` file (its tiles stay on the host). With
    `requested` ``auto`` an ONNX model takes onnxruntime's CUDA provider when it has one."""
    if Path(model).suffix.lower() == ".onnx":
        from srpipe.upscale import onnxrt

        if compile:
            raise SrpipeError("--compile applies to torch models; an ONNX model is optimised by onnxruntime")
        if precision not in ("auto", "fp32"):
            raise SrpipeError(
                f"--precision {precision}: an ONNX model runs in the precision it was exported in "
                "(srpipe export --format onnx [--fp16]); leave --precision auto"
            )
        net = onnxrt.OnnxNet(model, device="auto" if requested == "auto" else dev.type, index=dev.index or 0)
        info(f"{Path(model).name}: ONNX x{net.scale}, {np.dtype(net.dtype).name}, onnxruntime {net.provider}")
        return net, torch.device("cpu")
    net, _, _ = interop.load_generator(model)
    return prepare(net, dev, compile=compile), dev


def _outscale(t: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    if t.shape[-2:] == size:
        return t
    return F.interpolate(t[None], size=size, mode="bicubic", align_corners=False, antialias=True)[0].clamp(0, 1)


def upscale(
    model,
    inputs,
    out_dir,
    *,
    tile: int = DEFAULT_TILE,
    tile_pad: int = DEFAULT_PAD,
    blend: bool = False,
    precision: Precision = "auto",
    device: str = "auto",
    outscale: float | None = None,
    skip_existing: bool = False,
    batch: int = 0,
    compile: bool = False,
    ext: str = "png",
) -> list[Path]:
    """Upscale an image file or every image of a folder into `out_dir` (same stem, `.{ext}`: png, jpg or
    webp; ICC profile and EXIF carried over); returns written paths.

    `batch`: tiles per forward pass (0: auto, see `auto_batch`); `compile`: torch.compile the network.
    Several GPUs or machines: torchrun --nproc-per-node N -m srpipe upscale ... (a share of the files
    each, `srpipe.engine.folders.map_folder`; every rank returns all written paths).
    """
    with folders.session(device) as (share, dev):
        net, dev = load_model(model, dev, precision=precision, compile=compile, requested=device)
        src, out = Path(inputs), Path(out_dir)
        files = _input_files(src, out, ext=ext, outscale=outscale)
        kw = dict(tile=tile, pad=tile_pad, blend=blend, device=dev, batch=batch)
        autocast = inference.autocast_dtype(precision, dev)
        one = partial(
            _upscale_file, net, out=out, ext=ext, autocast=autocast, kw=kw, outscale=outscale, skip=skip_existing
        )
        done = folders.map_folder(files, one, where=src, share=share)
    if getattr(net, "dtype", None) is np.float16 and any(depth == 16 for _, depth in done.results):
        warn(
            f"{Path(model).name} is an fp16 ONNX model: 16-bit images keep only ~11 bits through it; "
            "export without --fp16 for full 16-bit precision"
        )
    return [target for target, _ in done.results]


def _input_files(src: Path, out: Path, *, ext: str, outscale: float | None) -> list[Path]:
    """The images to upscale (`src` a file or a folder), after checking the options against them."""
    if ext not in ("png", "jpg", "webp"):
        raise SrpipeError(f"--ext {ext!r}: use png, jpg or webp")
    if src.is_dir():
        files = list_sources(src, "input", ext=ext)
    elif src.is_file():
        files = [src]
    else:
        raise SrpipeError(f"--input {src} does not exist")
    if outscale is not None and outscale <= 0:
        raise SrpipeError(f"--outscale must be > 0, got {outscale}")
    if out.exists() and not out.is_dir():
        raise SrpipeError(f"--out {out} exists and is not a folder")
    return files


def _upscale_file(net, f: Path, *, out: Path, ext: str, autocast, kw: dict, outscale, skip: bool):
    """Upscale one file into `out` (none if `skip` and its output exists); (written path, bit depth)."""
    target = out / f"{f.stem}.{ext}"
    if skip and target.is_file():
        info(f"skip {f.name}: {target} exists")
        return None
    img, meta = read_image(f)
    ac = None if meta.bit_depth == 16 else autocast  # 16-bit images run in fp32: fp16 keeps ~11 bits
    sr = _upscale_image(net, img, meta, f, target, kw=dict(kw, autocast=ac), outscale=outscale)
    info(f"{f.name}: {img.shape[-1]}x{img.shape[-2]} -> {sr.shape[-1]}x{sr.shape[-2]} {target}")
    return target, meta.bit_depth


def _upscale_image(net, img: torch.Tensor, meta: ImageInfo, source: Path, target: Path, *, kw: dict, outscale):
    """Upscale one image (its alpha plane separately, as gray through the same network), resize it to
    `outscale` when asked, and write it to `target` with the source's depth, ICC profile and EXIF."""
    sr = upscale_tensor(net, img, **kw)
    alpha = None
    if meta.alpha is not None:
        a = torch.from_numpy(meta.alpha).float()[None].expand(3, -1, -1).contiguous()
        alpha = upscale_tensor(net, a, **kw).mean(0)
    if outscale is not None:
        h, w = img.shape[-2:]
        size = (max(1, round(h * outscale)), max(1, round(w * outscale)))
        sr = _outscale(sr, size)
        if alpha is not None:
            alpha = _outscale(alpha[None], size)[0]
    like = ImageInfo(
        str(source), meta.bit_depth, meta.gray, None if alpha is None else alpha.numpy(), meta.icc, meta.exif
    )
    write_image(target, sr, like=like)
    return sr
