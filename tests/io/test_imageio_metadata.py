"""ICC profiles and EXIF are carried from a source image to what srpipe writes (upscale)."""

from __future__ import annotations

import functools

import cv2
import numpy as np
import pytest
import torch
from PIL import Image, ImageCms

from srpipe.cli import main
from srpipe.io.imageio import add_png_metadata, read_image, write_image, write_png

MAKE = 0x010F
ORIENTATION = 0x0112


@functools.lru_cache(maxsize=1)
def srgb_profile() -> bytes:
    """One sRGB profile for the session: LittleCMS stamps each new profile with the current second
    (ICC header bytes 24-35), so two made across a second boundary differ."""
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def tagged_jpeg(path, *, orientation: int = 6, size=(40, 24)):
    """A JPEG with an ICC profile, a camera make and an EXIF rotation; left half red, right half blue."""
    a = np.zeros((size[1], size[0], 3), np.uint8)
    a[:, : size[0] // 2] = (220, 30, 30)
    a[:, size[0] // 2 :] = (30, 30, 220)
    exif = Image.Exif()
    exif[MAKE] = "srpipe-test-camera"
    exif[ORIENTATION] = orientation
    Image.fromarray(a).save(path, quality=95, icc_profile=srgb_profile(), exif=exif.tobytes())
    return path


def test_read_keeps_icc_and_exif_with_orientation_reset(tmp_path):
    img, info = read_image(tagged_jpeg(tmp_path / "cam.jpg"))
    assert img.shape == (3, 40, 24)  # orientation 6 applied: width and height swap
    assert info.icc == srgb_profile()
    exif = Image.Exif()
    exif.load(b"Exif\x00\x00" + info.exif)
    assert exif[MAKE] == "srpipe-test-camera" and exif[ORIENTATION] == 1


@pytest.mark.parametrize("ext", ["png", "jpg", "webp"])
def test_written_files_carry_the_profile_and_exif(tmp_path, ext):
    img, info = read_image(tagged_jpeg(tmp_path / "cam.jpg"))
    target = tmp_path / f"out.{ext}"
    write_image(target, img, like=info)
    with Image.open(target) as im:
        assert im.info.get("icc_profile") == srgb_profile()
        assert im.getexif()[MAKE] == "srpipe-test-camera"
        assert im.getexif().get(ORIENTATION, 1) == 1
    # Read back upright, not rotated a second time.
    again, _ = read_image(target)
    assert again.shape == img.shape
    assert torch.allclose(again, img, atol=0.1)


def test_16_bit_png_keeps_depth_and_profile(tmp_path):
    a = (np.arange(16 * 20 * 3, dtype=np.uint32).reshape(16, 20, 3) * 97 % 65536).astype(np.uint16)
    ok, buf = cv2.imencode(".png", a)
    (tmp_path / "deep.png").write_bytes(add_png_metadata(buf.tobytes(), icc=srgb_profile()))
    img, info = read_image(tmp_path / "deep.png")
    assert info.bit_depth == 16 and info.icc == srgb_profile()
    write_png(tmp_path / "out.png", img, like=info)
    back = cv2.imread(str(tmp_path / "out.png"), cv2.IMREAD_UNCHANGED)
    assert back.dtype == np.uint16 and np.array_equal(back, a)
    with Image.open(tmp_path / "out.png") as im:
        assert im.info.get("icc_profile") == srgb_profile()


def test_webp_keeps_alpha_and_unknown_ext_is_refused(tmp_path):
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[..., 0] = 200
    rgba[..., 3] = np.linspace(0, 255, 8, dtype=np.uint8)[None, :]
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    img, info = read_image(tmp_path / "a.png")
    write_image(tmp_path / "a.webp", img, like=info)
    with Image.open(tmp_path / "a.webp") as im:
        assert im.mode == "RGBA" and np.asarray(im)[0, 7, 3] > 200 and np.asarray(im)[0, 0, 3] < 40
    from srpipe.errors import SrpipeError

    with pytest.raises(SrpipeError, match="use png, jpg or webp"):
        write_image(tmp_path / "a.gif", img, like=info)


def test_upscale_cli_ext_jpg_carries_metadata(tmp_path, capsys):
    from srpipe.upscale import interop
    from srpipe.upscale.archs import RRDBNet

    args = {"scale": 2, "num_in_ch": 3, "num_out_ch": 3, "num_feat": 8, "num_block": 1, "num_grow_ch": 8}
    net = RRDBNet(**args)
    interop.save_generator(tmp_path / "m.safetensors", net.state_dict(), args)
    (tmp_path / "in").mkdir()
    tagged_jpeg(tmp_path / "in" / "cam.jpg", orientation=1, size=(16, 12))
    with pytest.raises(SystemExit) as e:
        main(
            [
                "upscale",
                "--model",
                str(tmp_path / "m.safetensors"),
                "--input",
                str(tmp_path / "in"),
                "--out",
                str(tmp_path / "out"),
                "--ext",
                "jpg",
                "--device",
                "cpu",
            ]
        )
    assert e.value.code == 0, capsys.readouterr().err
    with Image.open(tmp_path / "out" / "cam.jpg") as im:
        assert im.format == "JPEG" and im.size == (32, 24)
        assert im.info.get("icc_profile") == srgb_profile() and im.getexif()[MAKE] == "srpipe-test-camera"
