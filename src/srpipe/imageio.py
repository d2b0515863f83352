"""Reading and writing images.

`read_image` accepts PNG/JPEG/WebP/TIFF/BMP in 8 or 16 bits, gray, gray+alpha, RGB, RGBA, palette
and CMYK, applies the EXIF orientation, and returns the RGB image as a float tensor in [0, 1] plus
an `ImageInfo` describing how to write a result back the same way (alpha plane, bit depth, gray).

Decoding is OpenCV's (it keeps 16-bit depth, which Pillow drops for RGB); Pillow only reads the
EXIF orientation tag, since OpenCV's IMREAD_UNCHANGED ignores it. Writes are atomic: a temporary
file in the target folder, then `os.replace`, so a crash never leaves a truncated PNG behind.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from srpipe.errors import SrpipeError

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff", ".bmp")

# OpenCV spams stderr for corrupt files; we raise our own error that names the file instead.
try:
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
except AttributeError:  # older OpenCV builds without the logging module
    pass


class ImageReadError(SrpipeError):
    """A file that is not a readable image; the message names the file."""


@dataclass(frozen=True)
class ImageInfo:
    """What is needed to write a processed image back like its source."""

    path: str
    bit_depth: int  # 8 or 16
    gray: bool  # the source had one colour channel
    alpha: np.ndarray | None = None  # (H, W) float32 in [0, 1], or None


def list_images(folder: str | Path, *, recursive: bool = False) -> list[Path]:
    """Image files (by extension, any case) in `folder`, sorted by name. Errors if the folder is unusable."""
    root = Path(folder)
    if not root.exists():
        raise SrpipeError(f"folder {root} does not exist")
    if not root.is_dir():
        raise SrpipeError(f"{root} is not a folder")
    out: list[Path] = []
    seen: set[tuple[int, int]] = set()  # (dev, inode) of visited dirs: symlink loops end here

    def walk(d: Path) -> None:
        st = d.stat()
        if (st.st_dev, st.st_ino) in seen:
            return
        seen.add((st.st_dev, st.st_ino))
        for entry in sorted(d.iterdir()):
            try:
                if entry.is_dir():
                    if recursive:
                        walk(entry)
                elif entry.suffix.lower() in IMAGE_EXTS and entry.is_file():
                    out.append(entry)
            except OSError:  # a dangling link or a loop the OS reports: not an image, skip it
                continue

    walk(root)
    return out


def _exif_orientation(path: Path) -> int:
    try:
        from PIL import Image

        with Image.open(path) as im:
            return int(im.getexif().get(0x0112, 1))
    except Exception:  # no EXIF, or a format Pillow cannot parse: OpenCV decides readability
        return 1


def _apply_orientation(a: np.ndarray, o: int) -> np.ndarray:
    # EXIF 0x0112 values 2..8 (TIFF 6.0 spec): mirror and/or rotate so that row 0 is the visual top.
    if o == 2:
        a = a[:, ::-1]
    elif o == 3:
        a = a[::-1, ::-1]
    elif o == 4:
        a = a[::-1]
    elif o == 5:
        a = np.swapaxes(a, 0, 1)
    elif o == 6:
        a = np.rot90(a, -1)
    elif o == 7:
        a = np.rot90(np.swapaxes(a, 0, 1), 2)
    elif o == 8:
        a = np.rot90(a, 1)
    return np.ascontiguousarray(a)


def _decode(path: Path) -> np.ndarray:
    """Raw decode: (H, W) or (H, W, C) in BGR(A) order, uint8 or uint16."""
    try:
        buf = np.fromfile(str(path), dtype=np.uint8)  # fromfile: unicode paths work on every OS
    except OSError as e:
        raise ImageReadError(f"cannot read {path}: {e.strerror or e}") from None
    if buf.size == 0:
        raise ImageReadError(f"{path} is an empty file (0 bytes)")
    if buf[:2].tobytes() == b"\xff\xd8" and b"\xff\xd9" not in buf[-64:].tobytes():
        # OpenCV decodes a cut JPEG into a grey-padded image with only a warning.
        raise ImageReadError(f"{path} is a truncated JPEG (no end marker); re-export or remove it")
    try:
        a = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
    except cv2.error:
        a = None
    if a is None or a.size == 0:
        raise ImageReadError(f"{path} is not a readable image (corrupt, truncated or not an image)")
    if a.dtype not in (np.uint8, np.uint16):
        if a.dtype == np.float32:  # float TIFF: assume [0, 1]
            a = (np.clip(a, 0, 1) * 65535 + 0.5).astype(np.uint16)
        else:
            raise ImageReadError(f"{path} has unsupported sample type {a.dtype}; convert it to 8/16-bit")
    return a


def read_array(path: str | Path) -> tuple[np.ndarray, ImageInfo]:
    """RGB image as (H, W, 3) uint8 or uint16 array, plus its `ImageInfo` (alpha as float)."""
    p = Path(path)
    a = _decode(p)
    if p.suffix.lower() in (".jpg", ".jpeg", ".tif", ".tiff", ".webp"):
        a = _apply_orientation(a, _exif_orientation(p))
    depth = 16 if a.dtype == np.uint16 else 8
    scale = 65535.0 if depth == 16 else 255.0
    alpha = None
    if a.ndim == 2:
        gray, rgb = True, np.repeat(a[:, :, None], 3, axis=2)
    elif a.shape[2] == 1:
        gray, rgb = True, np.repeat(a, 3, axis=2)
    elif a.shape[2] == 2:  # gray + alpha
        gray, rgb = True, np.repeat(a[:, :, :1], 3, axis=2)
        alpha = a[:, :, 1].astype(np.float32) / scale
    elif a.shape[2] == 3:
        gray, rgb = False, a[:, :, ::-1]
    elif a.shape[2] == 4:
        gray, rgb = False, a[:, :, 2::-1]
        alpha = a[:, :, 3].astype(np.float32) / scale
    else:
        raise ImageReadError(f"{p} has {a.shape[2]} channels; srpipe reads gray, RGB and RGBA images")
    if alpha is not None and float(alpha.min()) >= 1.0:
        alpha = None  # an opaque alpha plane carries nothing worth writing back
    return np.ascontiguousarray(rgb), ImageInfo(str(p), depth, gray, alpha)


def read_uint8(path: str | Path) -> np.ndarray:
    """RGB (H, W, 3) uint8, for training caches (16-bit sources are rounded to 8 bits)."""
    a, info = read_array(path)
    if info.bit_depth == 16:
        a = ((a.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)
    return a


def read_image(path: str | Path):
    """RGB float32 tensor (3, H, W) in [0, 1], plus the `ImageInfo` to write results back alike."""
    import torch

    a, info = read_array(path)
    scale = 65535.0 if info.bit_depth == 16 else 255.0
    t = torch.from_numpy(a.astype(np.float32) / scale).permute(2, 0, 1).contiguous()
    return t, info


def to_uint(t, bit_depth: int = 8) -> np.ndarray:
    """(3, H, W) float tensor in [0, 1] -> (H, W, 3) uint8/uint16 array, rounded."""
    maxv = 65535.0 if bit_depth == 16 else 255.0
    a = t.detach().float().clamp(0, 1).mul(maxv).round().permute(1, 2, 0).cpu().numpy()
    return a.astype(np.uint16 if bit_depth == 16 else np.uint8)


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write `data` to `path` through a temp file in the same folder, fsync, then `os.replace`."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, p)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def encode_png(rgb: np.ndarray, *, gray: bool = False, alpha: np.ndarray | None = None) -> bytes:
    """PNG bytes from an (H, W, 3) uint8/uint16 RGB array; optional gray output and alpha plane."""
    maxv = 65535 if rgb.dtype == np.uint16 else 255
    if gray:
        # ITU-R BT.601 luma, as OpenCV's own RGB->gray conversion; exact for images that were gray.
        y = rgb.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
        out = np.clip(np.round(y), 0, maxv).astype(rgb.dtype)
        if alpha is not None:
            out = np.dstack([out, _alpha_plane(alpha, out.shape[:2], rgb.dtype)])
    else:
        out = rgb[:, :, ::-1]
        if alpha is not None:
            out = np.dstack([out, _alpha_plane(alpha, out.shape[:2], rgb.dtype)])
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(out))
    if not ok:
        raise SrpipeError("PNG encoding failed")
    return buf.tobytes()


def _alpha_plane(alpha: np.ndarray, hw: tuple[int, int], dtype) -> np.ndarray:
    maxv = 65535 if dtype == np.uint16 else 255
    if alpha.shape != hw:  # upscaled output: resize the alpha plane with it
        alpha = cv2.resize(alpha, (hw[1], hw[0]), interpolation=cv2.INTER_CUBIC)
    return np.clip(np.round(alpha * maxv), 0, maxv).astype(dtype)


def write_png(path: str | Path, t, *, like: ImageInfo | None = None) -> None:
    """Write a (3, H, W) tensor in [0, 1] as PNG, atomically; `like` restores depth, gray and alpha."""
    depth = like.bit_depth if like else 8
    rgb = to_uint(t, depth)
    data = encode_png(rgb, gray=bool(like and like.gray), alpha=like.alpha if like else None)
    try:
        atomic_write_bytes(path, data)
    except OSError as e:
        raise SrpipeError(f"cannot write {path}: {e.strerror or e}") from e


def write_png_uint8(path: str | Path, rgb: np.ndarray) -> None:
    """Write an (H, W, 3) uint8 RGB array as PNG, atomically."""
    try:
        atomic_write_bytes(path, encode_png(rgb))
    except OSError as e:
        raise SrpipeError(f"cannot write {path}: {e.strerror or e}") from e
