"""Reading and writing images.

`read_image` accepts PNG/JPEG/WebP/TIFF/BMP in 8 or 16 bits, gray, gray+alpha, RGB, RGBA, palette
and CMYK, applies the EXIF orientation, and returns the RGB image as a float tensor in [0, 1] plus
an `ImageInfo` describing how to write a result back the same way (alpha plane, bit depth, gray).

Decoding is OpenCV's (it keeps 16-bit depth, which Pillow drops for RGB). Pillow reads the EXIF
orientation tag, since OpenCV's IMREAD_UNCHANGED ignores it (except in TIFFs, where OpenCV applies
it itself), and decodes gray+alpha TIFFs, whose alpha OpenCV drops. The format is sniffed from the
bytes, not the extension. Writes are atomic: a temporary file in the target folder, then
`os.replace`, so a crash never leaves a truncated PNG behind.
"""

from __future__ import annotations

import io
import zlib
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from srpipe.errors import SrpipeError, write_failed

# re-exported: the writers below and older importers use them from here
from srpipe.io.files import _UMASK, atomic_write_bytes, file_sha256  # noqa: F401

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
    icc: bytes | None = None  # ICC colour profile of the source, written back with the result
    exif: bytes | None = None  # EXIF block (TIFF bytes) with orientation reset to 1, as pixels are upright


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
            except OSError:  # a dangling link, a loop or an unreadable sub-folder: skip it
                continue

    try:
        walk(root)
    except OSError as e:  # the folder itself cannot be listed (permissions)
        raise SrpipeError(f"cannot list folder {root}: {e.strerror or e}") from None
    return out


def list_sources(folder: str | Path, what: str = "HR", *, ext: str = "png") -> list[Path]:
    """`list_images` of a folder whose images become OUT/<stem>.<ext>: an empty folder, or two files
    that would be written under one name, stop with a message saying what to do."""
    paths = list_images(folder)
    if not paths:
        raise SrpipeError(f"{what} folder {folder} contains no images (png, jpg, webp, tif, bmp)")
    stems: dict[str, Path] = {}
    for p in paths:
        if p.stem in stems:
            raise SrpipeError(
                f"{p.name} and {stems[p.stem].name} in {folder} would both be written as {p.stem}.{ext}; rename one"
            )
        stems[p.stem] = p
    return paths


def _sniff(head: bytes) -> str:
    """Container format from the magic bytes (a JPEG saved as .png is common on the web)."""
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head.startswith(b"\xff\xd8"):
        return "jpeg"
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return "tiff"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    if head.startswith(b"BM"):
        return "bmp"
    return "other"


def _jpeg_truncated(data: bytes) -> bool:
    """True when a JPEG has no end-of-image marker after the start of its first scan.

    OpenCV decodes a cut JPEG into a grey-padded image with only a warning. Looking for FFD9 only
    at the very end would reject valid files with trailing data (phone "motion photos" append a
    video after EOI) and searching the whole file would find the EOI of the EXIF thumbnail, so the
    marker segments are walked up to the first SOS; in entropy-coded data a literal FF is always
    followed by 00 or a restart marker, so FFD9 after that point can only be the real EOI.
    """
    i, n = 2, len(data)
    while i + 4 <= n:
        if data[i] != 0xFF:
            return False  # not a marker where one must be: leave the verdict to the decoder
        m = data[i + 1]
        if m == 0xFF:  # fill byte
            i += 1
        elif m == 0xDA:  # start of scan
            return data.find(b"\xff\xd9", i) < 0
        elif m == 0x01 or 0xD0 <= m <= 0xD7:  # stand-alone markers
            i += 2
        elif m == 0xD9:  # EOI before any scan: a broken file, let the decoder judge
            return False
        else:
            i += 2 + ((data[i + 2] << 8) | data[i + 3])
    return True  # the file ends inside its headers


def _pil_header(data: bytes, fmt: str) -> tuple[int, str | None, bytes | None, bytes | None]:
    """(EXIF orientation, Pillow mode, ICC profile, EXIF bytes) from a lazy header parse.

    (1, None, None, None) when Pillow cannot tell. The EXIF bytes returned have their orientation
    set to 1: the pixels srpipe returns are already upright.
    """
    try:
        from PIL import Image

        with Image.open(io.BytesIO(data)) as im:
            mode = im.mode
            icc = im.info.get("icc_profile") or None
            # Pillow's PNG getexif() decodes the whole image to find a late eXIf chunk: only ask
            # when the file has one.
            if fmt == "png" and b"eXIf" not in data:
                return 1, mode, icc, None
            exif = im.getexif()
            o = int(exif.get(0x0112, 1))
            raw = None
            if len(exif):
                if 0x0112 in exif:
                    exif[0x0112] = 1
                raw = exif.tobytes()
                raw = raw[6:] if raw.startswith(b"Exif\x00\x00") else raw
            return (o if 1 <= o <= 8 else 1), mode, icc, raw
    except Exception:  # no EXIF, or a format Pillow cannot parse: OpenCV decides readability
        return 1, None, None, None


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


def _read_bytes(path: Path) -> bytes:
    try:
        with open(path, "rb") as fh:  # plain open: unicode paths work on every OS
            data = fh.read()
    except OSError as e:
        raise ImageReadError(f"cannot read {path}: {e.strerror or e}") from None
    if not data:
        raise ImageReadError(f"{path} is an empty file (0 bytes)")
    return data


def _decode(path: Path, data: bytes | None = None, fmt: str | None = None) -> np.ndarray:
    """Raw OpenCV decode: (H, W) or (H, W, C) in BGR(A) order, uint8 or uint16."""
    if data is None:
        data = _read_bytes(path)
    fmt = fmt or _sniff(data[:16])
    if fmt == "jpeg" and _jpeg_truncated(data):
        raise ImageReadError(f"{path} is a truncated JPEG (no end marker); re-export or remove it")
    try:
        a = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
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
    data = _read_bytes(p)
    fmt = _sniff(data[:16])
    a = _decode(p, data, fmt)
    orientation, mode, icc, exif = _pil_header(data, fmt)
    if fmt == "tiff":
        if mode in ("LA", "La") and a.ndim == 2:
            # OpenCV drops the alpha plane of gray+alpha TIFFs; Pillow keeps it (but, unlike
            # OpenCV, does not apply the orientation tag: done below).
            try:
                from PIL import Image

                with Image.open(io.BytesIO(data)) as im:
                    a = np.asarray(im.convert("LA"))
            except Exception as e:
                raise ImageReadError(f"{p} is not a readable gray+alpha TIFF ({e})") from None
        else:
            # OpenCV's TIFF decoder applies tag 274 itself (fixOrientation in grfmt_tiff.cpp,
            # 8 and 16 bit): applying it again would turn the image twice.
            orientation = 1
    a = _apply_orientation(a, orientation)
    depth = 16 if a.dtype == np.uint16 else 8
    scale = 65535.0 if depth == 16 else 255.0
    # OpenCV expands gray+alpha PNGs to BGRA; the PNG header says what the source really was.
    png_gray = fmt == "png" and len(data) > 25 and data[25] in (0, 4)
    alpha = None
    if a.ndim == 2:
        gray, rgb = True, np.repeat(a[:, :, None], 3, axis=2)
    elif a.shape[2] == 1:
        gray, rgb = True, np.repeat(a, 3, axis=2)
    elif a.shape[2] == 2:  # gray + alpha
        gray, rgb = True, np.repeat(a[:, :, :1], 3, axis=2)
        alpha = a[:, :, 1].astype(np.float32) / scale
    elif a.shape[2] == 3:
        gray, rgb = png_gray, a[:, :, ::-1]
    elif a.shape[2] == 4:
        gray, rgb = png_gray, a[:, :, 2::-1]
        alpha = a[:, :, 3].astype(np.float32) / scale
    else:
        raise ImageReadError(f"{p} has {a.shape[2]} channels; srpipe reads gray, RGB and RGBA images")
    if alpha is not None and float(alpha.min()) >= 1.0:
        alpha = None  # an opaque alpha plane carries nothing worth writing back
    return np.ascontiguousarray(rgb), ImageInfo(str(p), depth, gray, alpha, icc, exif)


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


def encode_png(rgb: np.ndarray, *, gray: bool = False, alpha: np.ndarray | None = None) -> bytes:
    """PNG bytes from an (H, W, 3) uint8/uint16 RGB array; optional gray output and alpha plane."""
    maxv = 65535 if rgb.dtype == np.uint16 else 255
    if gray:
        # ITU-R BT.601 luma, as OpenCV's own RGB->gray conversion; exact for images that were gray.
        y = rgb.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
        out = np.clip(np.round(y), 0, maxv).astype(rgb.dtype)
        if alpha is not None:
            a = _alpha_plane(alpha, out.shape[:2], rgb.dtype)
            if rgb.dtype == np.uint8:
                # OpenCV cannot encode 2-channel PNGs; Pillow writes 8-bit gray+alpha ("LA").
                from PIL import Image

                buf = io.BytesIO()
                Image.fromarray(np.dstack([out, a]), "LA").save(buf, format="PNG")
                return buf.getvalue()
            # Neither library writes 16-bit gray+alpha: RGBA with equal channels keeps every value.
            out = np.dstack([out, out, out, a])
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


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return len(body).to_bytes(4, "big") + kind + body + zlib.crc32(kind + body).to_bytes(4, "big")


def add_png_metadata(png: bytes, *, icc: bytes | None = None, exif: bytes | None = None) -> bytes:
    """Insert iCCP and eXIf chunks right after IHDR (PNG spec: before PLTE/IDAT), any bit depth."""
    if not icc and not exif:
        return png
    ihdr_end = 8 + 4 + 4 + 13 + 4  # signature, IHDR length, type, 13 data bytes, CRC
    extra = b""
    if icc:
        extra += _png_chunk(b"iCCP", b"ICC Profile\x00\x00" + zlib.compress(icc))
    if exif:
        extra += _png_chunk(b"eXIf", exif)
    return png[:ihdr_end] + extra + png[ihdr_end:]


def encode_image(t, ext: str = "png", *, like: ImageInfo | None = None, quality: int = 95) -> bytes:
    """Encode a (3, H, W) tensor in [0, 1] as PNG, JPEG or WebP bytes, written back like `like`.

    PNG keeps bit depth, gray and alpha; JPEG and WebP are 8-bit (JPEG has no alpha). The source's
    ICC profile and EXIF (orientation reset) are carried over in every format.
    """
    ext = ext.lower().lstrip(".")
    icc, exif = (like.icc, like.exif) if like else (None, None)
    if ext == "png":
        rgb = to_uint(t, like.bit_depth if like else 8)
        png = encode_png(rgb, gray=bool(like and like.gray), alpha=like.alpha if like else None)
        return add_png_metadata(png, icc=icc, exif=exif)
    if ext not in ("jpg", "jpeg", "webp"):
        raise SrpipeError(f"unknown output format {ext!r}: use png, jpg or webp")
    from PIL import Image

    rgb = to_uint(t, 8)
    im = Image.fromarray(rgb, "RGB")
    if like and like.gray:
        im = im.convert("L")
    if like and like.alpha is not None and ext == "webp":
        im = im.convert("RGBA") if not like.gray else im.convert("LA").convert("RGBA")
        im.putalpha(Image.fromarray(_alpha_plane(like.alpha, rgb.shape[:2], np.uint8), "L"))
    kw = {"quality": quality}
    if icc:
        kw["icc_profile"] = icc
    if exif:
        kw["exif"] = b"Exif\x00\x00" + exif
    buf = io.BytesIO()
    im.save(buf, format="JPEG" if ext in ("jpg", "jpeg") else "WEBP", **kw)
    return buf.getvalue()


def write_image(path: str | Path, t, *, like: ImageInfo | None = None, quality: int = 95) -> None:
    """Write a tensor atomically in the format of `path`'s extension (png, jpg, webp); see encode_image."""
    data = encode_image(t, Path(path).suffix or "png", like=like, quality=quality)
    try:
        atomic_write_bytes(path, data)
    except OSError as e:
        raise SrpipeError(write_failed(path, e)) from e


def write_png(path: str | Path, t, *, like: ImageInfo | None = None) -> None:
    """Write a (3, H, W) tensor in [0, 1] as PNG, atomically; `like` restores depth, gray and alpha."""
    depth = like.bit_depth if like else 8
    rgb = to_uint(t, depth)
    data = encode_png(rgb, gray=bool(like and like.gray), alpha=like.alpha if like else None)
    if like is not None:
        data = add_png_metadata(data, icc=like.icc, exif=like.exif)
    try:
        atomic_write_bytes(path, data)
    except OSError as e:
        raise SrpipeError(write_failed(path, e)) from e
