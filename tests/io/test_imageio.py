"""imageio: every input kind (formats, depths, gray, alpha), EXIF orientation, write-back, errors, listing, atomic writes."""

from __future__ import annotations

import io
import os
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image, ImageOps

from srpipe.io import imageio
from srpipe.errors import SrpipeError
from srpipe.io.imageio import ImageReadError, list_images, read_array, read_image, read_uint8, write_png

RNG = np.random.default_rng(1234)


def rand8(h, w, c=3):
    return RNG.integers(0, 256, (h, w, c) if c else (h, w), dtype=np.uint8)


def rand16(h, w, c=3):
    return RNG.integers(0, 65536, (h, w, c) if c else (h, w), dtype=np.uint16)


def png_bytes(arr: np.ndarray, color_type: int) -> bytes:
    """A minimal independent PNG encoder (filter 0 rows), for layouts neither library writes (16-bit LA)."""
    h, w = arr.shape[:2]
    depth = 16 if arr.dtype == np.uint16 else 8
    raw = arr.astype(">u2" if depth == 16 else np.uint8).reshape(h, -1).tobytes()
    stride = len(raw) // h
    rows = b"".join(b"\x00" + raw[i * stride : (i + 1) * stride] for i in range(h))

    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", w, h, depth, color_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


# ---------------------------------------------------------------------------------------------
# Plain 8/16-bit RGB and gray


def test_png_8bit_rgb_exact_and_tensor(tmp_path):
    a = rand8(5, 7)
    Image.fromarray(a).save(tmp_path / "a.png")
    arr, info = read_array(tmp_path / "a.png")
    assert arr.dtype == np.uint8 and np.array_equal(arr, a)
    assert (info.bit_depth, info.gray, info.alpha) == (8, False, None)
    t, info2 = read_image(tmp_path / "a.png")
    assert t.dtype == torch.float32 and t.shape == (3, 5, 7)
    assert torch.allclose(t, torch.from_numpy(a).permute(2, 0, 1).float() / 255)
    assert info2.path == str(tmp_path / "a.png")


def test_png_16bit_rgb_keeps_depth(tmp_path):
    a = rand16(4, 6)
    cv2.imwrite(str(tmp_path / "a.png"), a[:, :, ::-1])  # OpenCV writes BGR
    arr, info = read_array(tmp_path / "a.png")
    assert arr.dtype == np.uint16 and np.array_equal(arr, a)
    assert info.bit_depth == 16 and not info.gray
    t, _ = read_image(tmp_path / "a.png")
    assert torch.allclose(t, torch.from_numpy(a.astype(np.float32) / 65535).permute(2, 0, 1))
    u8 = read_uint8(tmp_path / "a.png")
    assert u8.dtype == np.uint8 and np.array_equal(u8, np.round(a / 257.0).astype(np.uint8))


@pytest.mark.parametrize("depth", [8, 16])
def test_gray_png(tmp_path, depth):
    g = rand8(5, 4, 0) if depth == 8 else rand16(5, 4, 0)
    cv2.imwrite(str(tmp_path / "g.png"), g)
    arr, info = read_array(tmp_path / "g.png")
    assert info.gray and info.bit_depth == depth and info.alpha is None
    assert arr.shape == (5, 4, 3) and all(np.array_equal(arr[:, :, c], g) for c in range(3))


def test_16bit_tiff_rgb_and_gray(tmp_path):
    a = rand16(6, 5)
    cv2.imwrite(str(tmp_path / "a.tif"), a[:, :, ::-1])
    arr, info = read_array(tmp_path / "a.tif")
    assert arr.dtype == np.uint16 and np.array_equal(arr, a) and info.bit_depth == 16 and not info.gray
    g = rand16(6, 5, 0)
    Image.fromarray(g).save(tmp_path / "g.tiff")  # Pillow mode I;16
    arr, info = read_array(tmp_path / "g.tiff")
    assert info.gray and info.bit_depth == 16 and np.array_equal(arr[:, :, 1], g)


def test_gray_jpeg(tmp_path):
    g = np.kron(rand8(3, 3, 0), np.ones((8, 8), np.uint8))
    Image.fromarray(g).save(tmp_path / "g.jpg", quality=100)
    arr, info = read_array(tmp_path / "g.jpg")
    assert info.gray and arr.shape == (24, 24, 3)
    assert np.abs(arr[:, :, 0].astype(int) - g).max() <= 2


# ---------------------------------------------------------------------------------------------
# Alpha, palette, CMYK


@pytest.mark.parametrize("depth", [8, 16])
def test_rgba_png_alpha_round_trip(tmp_path, depth):
    a = rand8(5, 6, 4) if depth == 8 else rand16(5, 6, 4)
    cv2.imwrite(str(tmp_path / "a.png"), a[:, :, [2, 1, 0, 3]])
    t, info = read_image(tmp_path / "a.png")
    maxv = 255.0 if depth == 8 else 65535.0
    assert info.bit_depth == depth and not info.gray
    assert info.alpha is not None and info.alpha.shape == (5, 6)
    assert np.allclose(info.alpha, a[:, :, 3] / maxv, atol=1e-7)
    assert torch.allclose(t, torch.from_numpy(a[:, :, :3].astype(np.float32) / maxv).permute(2, 0, 1))
    write_png(tmp_path / "out.png", t, like=info)
    back, info_b = read_array(tmp_path / "out.png")
    assert np.array_equal(back, a[:, :, :3]) and info_b.bit_depth == depth
    assert np.array_equal(info_b.alpha, info.alpha)


def test_gray_alpha_png_8bit_round_trip(tmp_path):
    la = rand8(5, 7, 2)
    Image.fromarray(la, "LA").save(tmp_path / "la.png")
    t, info = read_image(tmp_path / "la.png")
    assert info.gray, "gray+alpha source must be written back as gray"
    assert info.alpha is not None and np.allclose(info.alpha, la[:, :, 1] / 255.0)
    assert torch.allclose(t[0], torch.from_numpy(la[:, :, 0]).float() / 255)
    write_png(tmp_path / "out.png", t, like=info)
    with Image.open(tmp_path / "out.png") as im:
        assert im.mode == "LA"
        assert np.array_equal(np.asarray(im), la)
    back, info_b = read_array(tmp_path / "out.png")
    assert info_b.gray and np.array_equal(info_b.alpha, info.alpha)


def test_gray_alpha_png_16bit_round_trip(tmp_path):
    la = rand16(4, 5, 2)
    (tmp_path / "la16.png").write_bytes(png_bytes(la, color_type=4))
    t, info = read_image(tmp_path / "la16.png")
    assert info.gray and info.bit_depth == 16
    assert np.array_equal(np.round(info.alpha * 65535).astype(np.uint16), la[:, :, 1])
    write_png(tmp_path / "out.png", t, like=info)
    back, info_b = read_array(tmp_path / "out.png")
    assert back.dtype == np.uint16 and np.array_equal(back[:, :, 0], la[:, :, 0])
    assert np.array_equal(info_b.alpha, info.alpha)


def test_gray_alpha_tiff_keeps_alpha(tmp_path):
    la = rand8(4, 6, 2)
    Image.fromarray(la, "LA").save(tmp_path / "la.tif")
    arr, info = read_array(tmp_path / "la.tif")
    assert info.gray and info.alpha is not None
    assert np.array_equal(arr[:, :, 0], la[:, :, 0])
    assert np.allclose(info.alpha, la[:, :, 1] / 255.0)


def test_opaque_alpha_is_dropped(tmp_path):
    a = rand8(3, 3, 4)
    a[:, :, 3] = 255
    Image.fromarray(a, "RGBA").save(tmp_path / "a.png")
    _, info = read_array(tmp_path / "a.png")
    assert info.alpha is None


def test_palette_png(tmp_path):
    a = rand8(6, 5)
    p = Image.fromarray(a).convert("P")
    p.save(tmp_path / "p.png")
    arr, info = read_array(tmp_path / "p.png")
    assert np.array_equal(arr, np.asarray(p.convert("RGB"))) and not info.gray and info.alpha is None
    # palette with a transparent entry: alpha comes back
    p.save(tmp_path / "pt.png", transparency=int(np.asarray(p)[0, 0]))
    arr, info = read_array(tmp_path / "pt.png")
    assert info.alpha is not None and info.alpha[0, 0] == 0.0
    with Image.open(tmp_path / "pt.png") as im:
        ref = np.asarray(im.convert("RGBA"))
    assert np.array_equal(info.alpha, ref[:, :, 3] / np.float32(255.0))


def test_cmyk_jpeg(tmp_path):
    a = np.kron(rand8(2, 3), np.ones((8, 8, 1), np.uint8))
    Image.fromarray(a).convert("CMYK").save(tmp_path / "c.jpg", quality=100)
    with Image.open(tmp_path / "c.jpg") as im:
        assert im.mode == "CMYK"
        ref = np.asarray(im.convert("RGB")).astype(int)
    arr, info = read_array(tmp_path / "c.jpg")
    assert arr.shape == (16, 24, 3) and not info.gray and info.alpha is None
    assert np.abs(arr.astype(int) - ref).max() <= 2  # same pixels as Pillow's CMYK->RGB
    assert np.abs(arr.astype(int) - a).mean() < 4  # and close to the colours that went in


def test_cmyk_tiff(tmp_path):
    a = rand8(4, 5)
    Image.fromarray(a).convert("CMYK").save(tmp_path / "c.tif")
    with Image.open(tmp_path / "c.tif") as im:
        ref = np.asarray(im.convert("RGB"))
    arr, info = read_array(tmp_path / "c.tif")
    assert np.array_equal(arr, ref) and info.alpha is None


# ---------------------------------------------------------------------------------------------
# EXIF orientation

RED, GREEN, BLUE, BLACK = (255, 0, 0), (0, 255, 0), (0, 0, 255), (0, 0, 0)


def _oriented_source() -> np.ndarray:
    """32x48 (non-square) with distinct corners: TL red, TR green, BL blue, BR black (8x8 blocks: JPEG-safe)."""
    a = np.full((4, 6, 3), 128, np.uint8)
    a[0, 0], a[0, -1], a[-1, 0], a[-1, -1] = RED, GREEN, BLUE, BLACK
    return np.kron(a, np.ones((8, 8, 1), np.uint8))


def _corners(a: np.ndarray) -> list[tuple[int, int, int]]:
    """Colours at TL, TR, BL, BR (centre of the 8x8 corner block), snapped to 0/128/255."""
    pts = [a[3, 3], a[3, -4], a[-4, 3], a[-4, -4]]
    snap = lambda v: int(min((0, 128, 255), key=lambda x: abs(x - int(v))))  # noqa: E731
    return [tuple(snap(v) for v in p) for p in pts]


def _save_oriented(path: Path, a: np.ndarray, o: int, **kw) -> None:
    im = Image.fromarray(a)
    exif = im.getexif()
    exif[0x0112] = o
    im.save(path, exif=exif, **kw)


# display corners (TL, TR, BL, BR) per EXIF orientation, from the TIFF 6.0 / EXIF 2.3 definitions
EXPECTED_CORNERS = {
    1: [RED, GREEN, BLUE, BLACK],
    2: [GREEN, RED, BLACK, BLUE],  # mirrored horizontally
    3: [BLACK, BLUE, GREEN, RED],  # rotated 180
    4: [BLUE, BLACK, RED, GREEN],  # mirrored vertically
    5: [RED, BLUE, GREEN, BLACK],  # transposed
    6: [BLUE, RED, BLACK, GREEN],  # stored rotated 90 CCW: display rotates 90 CW
    7: [BLACK, GREEN, BLUE, RED],  # transversed
    8: [GREEN, BLACK, RED, BLUE],  # stored rotated 90 CW: display rotates 90 CCW
}


@pytest.mark.parametrize("o", range(1, 9))
def test_exif_orientation_jpeg(tmp_path, o):
    src = _oriented_source()
    _save_oriented(tmp_path / "o.jpg", src, o, quality=100)
    arr, _ = read_array(tmp_path / "o.jpg")
    assert arr.shape == ((48, 32, 3) if o >= 5 else (32, 48, 3))
    assert _corners(arr) == EXPECTED_CORNERS[o]
    with Image.open(tmp_path / "o.jpg") as im:  # Pillow's own exif_transpose agrees pixel by pixel
        ref = np.asarray(ImageOps.exif_transpose(im)).astype(int)
    assert np.abs(arr.astype(int) - ref).max() <= 3


@pytest.mark.parametrize("ext,o", [(".webp", 6), (".webp", 3), (".png", 8), (".png", 2), (".tif", 6), (".tif", 7)])
def test_exif_orientation_other_formats(tmp_path, ext, o):
    src = _oriented_source()
    kw = {"lossless": True} if ext == ".webp" else {}
    _save_oriented(tmp_path / f"o{ext}", src, o, **kw)
    arr, _ = read_array(tmp_path / f"o{ext}")
    assert _corners(arr) == EXPECTED_CORNERS[o]
    with Image.open(tmp_path / f"o{ext}") as im:
        assert np.array_equal(arr, np.asarray(ImageOps.exif_transpose(im).convert("RGB")))


def test_exif_orientation_16bit_tiff(tmp_path):
    """OpenCV applies tag 274 for 16-bit TIFFs itself: srpipe must not turn the image a second time."""
    g = np.zeros((4, 6), np.uint16)
    g[0, 0], g[0, -1], g[-1, 0] = 60000, 30000, 10000
    g = np.kron(g, np.ones((8, 8), np.uint16))
    _save_oriented(tmp_path / "g.tif", g, 6)
    arr, info = read_array(tmp_path / "g.tif")
    assert arr.shape == (48, 32, 3) and info.bit_depth == 16
    # rotated 90 CW for display: TL <- stored BL, TR <- stored TL, BR <- stored TR
    assert (arr[0, 0, 0], arr[0, -1, 0], arr[-1, -1, 0], arr[-1, 0, 0]) == (10000, 60000, 30000, 0)


# ---------------------------------------------------------------------------------------------
# Other formats and paths


def test_webp_bmp_lossless(tmp_path):
    a = rand8(5, 9)
    Image.fromarray(a).save(tmp_path / "a.webp", lossless=True)
    Image.fromarray(a).save(tmp_path / "a.bmp")
    for name in ("a.webp", "a.bmp"):
        arr, info = read_array(tmp_path / name)
        assert np.array_equal(arr, a), name
        assert info.bit_depth == 8 and not info.gray
    rgba = rand8(4, 4, 4)
    Image.fromarray(rgba, "RGBA").save(tmp_path / "b.webp", lossless=True)
    arr, info = read_array(tmp_path / "b.webp")
    assert np.array_equal(arr, rgba[:, :, :3]) and np.allclose(info.alpha, rgba[:, :, 3] / 255.0)


def test_upper_case_extension_and_unicode_path(tmp_path):
    a = rand8(3, 4)
    folder = tmp_path / "fötos mit leerzeichen 写真"
    folder.mkdir()
    Image.fromarray(a).save(folder / "Bild Eins.PNG")
    Image.fromarray(a).save(folder / "B.JPEG", quality=100)
    assert [p.name for p in list_images(folder)] == ["B.JPEG", "Bild Eins.PNG"]
    arr, _ = read_array(folder / "Bild Eins.PNG")
    assert np.array_equal(arr, a)
    t, _ = read_image(folder / "B.JPEG")
    assert t.shape == (3, 3, 4)
    write_png(folder / "ausgabe ü.png", t)
    assert (folder / "ausgabe ü.png").is_file()


def test_one_pixel_image(tmp_path):
    Image.fromarray(np.array([[[10, 20, 30]]], np.uint8)).save(tmp_path / "1.png")
    t, info = read_image(tmp_path / "1.png")
    assert t.shape == (3, 1, 1)
    assert torch.allclose(t.flatten(), torch.tensor([10, 20, 30]) / 255.0)
    write_png(tmp_path / "1b.png", t, like=info)
    assert np.array_equal(read_array(tmp_path / "1b.png")[0], [[[10, 20, 30]]])


def test_content_not_extension_decides_format(tmp_path):
    """A JPEG saved as .png (common on the web) still gets its EXIF orientation."""
    _save_oriented(tmp_path / "really_a_jpeg.png", _oriented_source(), 6, format="JPEG", quality=100)
    arr, _ = read_array(tmp_path / "really_a_jpeg.png")
    assert _corners(arr) == EXPECTED_CORNERS[6]


def test_write_png_gray_and_16bit_like(tmp_path):
    g16 = rand16(4, 5, 0)
    cv2.imwrite(str(tmp_path / "g.png"), g16)
    t, info = read_image(tmp_path / "g.png")
    write_png(tmp_path / "out.png", t, like=info)
    back = cv2.imread(str(tmp_path / "out.png"), cv2.IMREAD_UNCHANGED)
    assert back.ndim == 2 and back.dtype == np.uint16 and np.array_equal(back, g16)
    # no `like`: 8-bit RGB
    write_png(tmp_path / "rgb.png", t)
    with Image.open(tmp_path / "rgb.png") as im:
        assert im.mode == "RGB"


def test_write_png_resizes_alpha_for_upscaled_output(tmp_path):
    a = rand8(4, 4, 4)
    a[:, :, 3] = 0
    a[:2, :, 3] = 255
    Image.fromarray(a, "RGBA").save(tmp_path / "a.png")
    t, info = read_image(tmp_path / "a.png")
    up = torch.nn.functional.interpolate(t[None], scale_factor=2, mode="nearest")[0]
    write_png(tmp_path / "up.png", up, like=info)
    _, info_up = read_array(tmp_path / "up.png")
    assert info_up.alpha.shape == (8, 8)
    assert info_up.alpha[0, 0] == 1.0 and info_up.alpha[-1, -1] == 0.0


# ---------------------------------------------------------------------------------------------
# Errors name the file


def _assert_read_error(path: Path, *words: str) -> None:
    with pytest.raises(ImageReadError) as ei:
        read_image(path)
    msg = str(ei.value)
    assert path.name in msg and "\n" not in msg
    for w in words:
        assert w in msg


def test_read_errors(tmp_path):
    (tmp_path / "empty.png").write_bytes(b"")
    _assert_read_error(tmp_path / "empty.png", "empty")
    (tmp_path / "junk.png").write_bytes(b"\x89PNG\r\n\x1a\n" + RNG.integers(0, 256, 300, dtype=np.uint8).tobytes())
    _assert_read_error(tmp_path / "junk.png")
    (tmp_path / "notes.jpg").write_text("this is text, not a photo\n")
    _assert_read_error(tmp_path / "notes.jpg")
    _assert_read_error(tmp_path / "missing.png", "cannot read")
    (tmp_path / "dir.png").mkdir()
    _assert_read_error(tmp_path / "dir.png")


def test_truncated_png(tmp_path):
    Image.fromarray(rand8(32, 32)).save(tmp_path / "full.png")
    data = (tmp_path / "full.png").read_bytes()
    for n in (len(data) // 2, len(data) - 12, 20):
        (tmp_path / "cut.png").write_bytes(data[:n])
        _assert_read_error(tmp_path / "cut.png")


@pytest.mark.parametrize("kw", [{}, {"progressive": True}, {"restart_marker_blocks": 1}])
def test_truncated_jpeg(tmp_path, kw):
    a = rand8(32, 32)
    Image.fromarray(a).save(tmp_path / "full.jpg", quality=90, **kw)
    assert read_array(tmp_path / "full.jpg")[0].shape == (32, 32, 3)  # the whole file reads
    data = (tmp_path / "full.jpg").read_bytes()
    for n in (len(data) // 2, len(data) - 2, 100):
        (tmp_path / "cut.jpg").write_bytes(data[:n])
        _assert_read_error(tmp_path / "cut.jpg", "truncated")


def test_truncated_jpeg_with_end_marker_in_header(tmp_path):
    """An FFD9 inside a header segment (EXIF thumbnail, comment) is not the image's end marker."""
    Image.fromarray(rand8(32, 32)).save(tmp_path / "c.jpg", quality=90, comment=b"x\xff\xd9y")
    data = (tmp_path / "c.jpg").read_bytes()
    assert read_array(tmp_path / "c.jpg")[0].shape == (32, 32, 3)
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) * 2 // 3])
    _assert_read_error(tmp_path / "cut.jpg", "truncated")


def test_jpeg_with_trailing_data_reads(tmp_path):
    """Phones append data after the JPEG end marker (motion photos): the image is complete."""
    a = np.kron(rand8(2, 2), np.ones((8, 8, 1), np.uint8))
    Image.fromarray(a).save(tmp_path / "a.jpg", quality=100)
    good = read_array(tmp_path / "a.jpg")[0]
    (tmp_path / "b.jpg").write_bytes((tmp_path / "a.jpg").read_bytes() + b"\x00ftypmp42" + bytes(5000))
    arr, _ = read_array(tmp_path / "b.jpg")
    assert np.array_equal(arr, good)


# ---------------------------------------------------------------------------------------------
# list_images


def test_list_images_errors(tmp_path):
    with pytest.raises(SrpipeError, match="does not exist") as ei:
        list_images(tmp_path / "nope")
    assert "nope" in str(ei.value)
    (tmp_path / "f.png").write_bytes(b"x")
    with pytest.raises(SrpipeError, match="not a folder"):
        list_images(tmp_path / "f.png")


def test_list_images_filters_and_sorts(tmp_path):
    for n in ("c.png", "a.JPG", "b.webp", "d.tiff", "e.bmp", "f.jpeg", "g.tif"):
        (tmp_path / n).write_bytes(b"x")
    for n in ("notes.txt", "README", "x.png.bak", ".DS_Store", "model.safetensors"):
        (tmp_path / n).write_bytes(b"x")
    (tmp_path / "sub.png").mkdir()  # a folder with an image-like name
    (tmp_path / "sub.png" / "deep.png").write_bytes(b"x")
    os.symlink(tmp_path / "gone.png", tmp_path / "dangling.png")
    names = [p.name for p in list_images(tmp_path)]
    assert names == ["a.JPG", "b.webp", "c.png", "d.tiff", "e.bmp", "f.jpeg", "g.tif"]
    rec = [p.relative_to(tmp_path).as_posix() for p in list_images(tmp_path, recursive=True)]
    assert "sub.png/deep.png" in rec and len(rec) == 8


def test_list_images_symlink_loop_terminates(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x.png").write_bytes(b"x")
    os.symlink(tmp_path, tmp_path / "a" / "up")  # a -> .. -> a -> ...
    os.symlink(tmp_path / "self", tmp_path / "self")  # a link to itself (ELOOP)
    assert list_images(tmp_path) == []
    found = list_images(tmp_path, recursive=True)
    assert [p.name for p in found] == ["x.png"]


# ---------------------------------------------------------------------------------------------
# Atomic writes


def test_failed_write_leaves_nothing(tmp_path, monkeypatch):
    def boom(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", boom)
    t = torch.rand(3, 4, 4)
    with pytest.raises(SrpipeError, match="out.png"):
        write_png(tmp_path / "out.png", t)
    assert list(tmp_path.iterdir()) == []


def test_failed_overwrite_keeps_old_file(tmp_path, monkeypatch):
    write_png(tmp_path / "out.png", torch.zeros(3, 2, 2))
    before = (tmp_path / "out.png").read_bytes()

    def broken_disk(src, dst):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "replace", broken_disk)
    with pytest.raises(SrpipeError):
        write_png(tmp_path / "out.png", torch.ones(3, 2, 2))
    assert (tmp_path / "out.png").read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["out.png"]


def test_atomic_write_bytes_creates_parents(tmp_path):
    imageio.atomic_write_bytes(tmp_path / "a" / "b" / "f.bin", b"abc")
    assert (tmp_path / "a" / "b" / "f.bin").read_bytes() == b"abc"
    assert sorted(p.name for p in (tmp_path / "a" / "b").iterdir()) == ["f.bin"]


def test_encode_png_is_decodable():
    rgb = rand8(3, 3)
    data = imageio.encode_png(rgb)
    with Image.open(io.BytesIO(data)) as im:
        assert np.array_equal(np.asarray(im), rgb)


def test_atomic_writes_get_umask_permissions_not_mkstemps_0600(tmp_path):
    import stat

    from srpipe.io.imageio import _UMASK, atomic_write_bytes

    atomic_write_bytes(tmp_path / "x.bin", b"data")
    assert stat.S_IMODE((tmp_path / "x.bin").stat().st_mode) == 0o666 & ~_UMASK


def test_list_sources_refuses_empty_folders_and_clashing_stems(tmp_path):
    from srpipe.errors import SrpipeError
    from srpipe.io.imageio import list_sources

    (tmp_path / "empty").mkdir()
    with pytest.raises(SrpipeError, match="HR folder .* contains no images"):
        list_sources(tmp_path / "empty", "HR")
    folder = tmp_path / "clash"
    folder.mkdir()
    for name in ("a.png", "a.jpg", "b.png"):
        (folder / name).write_bytes(b"")
    with pytest.raises(SrpipeError, match="a.png and a.jpg .* would both be written as a.png; rename one"):
        list_sources(folder, "HR")
    (folder / "a.jpg").unlink()
    assert [p.name for p in list_sources(folder)] == ["a.png", "b.png"]
