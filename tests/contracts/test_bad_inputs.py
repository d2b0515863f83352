"""Bad inputs end to end: every case goes through `srpipe.cli.main` as a user would.

For each input the CLI either produces an output (valid images always do) or stops with exactly
one `error:` line naming what, which file and what to do, a non-zero exit code, no traceback, and
no output that looks complete (no pairs.json, no generator, no PNG for an unreadable input).
The library-level decoding of each format is tested in test_imageio.py; this is the CLI matrix.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from tests.helpers import dsgan_argv, make_folder
from srpipe.engine import ckpt
from srpipe.cli import main
from srpipe.degrade.archs import DSGANGenerator
from srpipe.io.jpeg import JpegEstimate
from srpipe.upscale import interop
from srpipe.upscale.archs import RRDBNet


@pytest.fixture(autouse=True)
def _small_and_isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("SRPIPE_CACHE_DIR", str(tmp_path / "decode-cache"))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny nets: thread sync costs more than it saves
    yield
    torch.set_num_threads(threads)


def cli(capsys, *args) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of `srpipe ARGS`."""
    with pytest.raises(SystemExit) as e:
        main([str(a) for a in args])
    c = capsys.readouterr()
    return e.value.code, c.out, c.err


def error_lines(err: str) -> list[str]:
    return [ln for ln in err.splitlines() if ln.startswith("error:")]


def assert_one_clear_error(code: int, err: str, *words: str, exit_code: int | None = None) -> str:
    """Non-zero exit, no traceback, exactly one `error:` line that holds every word."""
    assert code != 0, err
    if exit_code is not None:
        assert code == exit_code, err
    assert "Traceback" not in err, err
    lines = error_lines(err)
    assert len(lines) == 1, err
    for w in words:
        assert w in lines[0], (w, lines[0])
    return lines[0]


# ---------------------------------------------------------------------------------------------
# Files of every kind a camera, a scanner or a scraper produces


def _rgb(w: int, h: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = rng.random((max(2, h // 4), max(2, w // 4), 3)).astype(np.float32)
    return (cv2.resize(base, (w, h), interpolation=cv2.INTER_CUBIC).clip(0, 1) * 255).round().astype(np.uint8)


def _png_bytes(a: np.ndarray) -> bytes:
    return cv2.imencode(".png", a)[1].tobytes()


def _jpeg_bytes(a: np.ndarray) -> bytes:
    return cv2.imencode(".jpg", a, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes()


def _pil_bytes(im: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format=fmt, **kw)
    return buf.getvalue()


def _corrupt_png() -> bytes:
    data = bytearray(_png_bytes(_rgb(24, 20)))
    for i in range(60, len(data) - 20):  # scramble the IDAT payload (its CRC then fails)
        data[i] ^= 0x5A
    return bytes(data)


def _corrupt_jpeg() -> bytes:
    data = _jpeg_bytes(_rgb(24, 20))
    return data[:2] + b"\xff\xc0\x00\x03garbage" + data[2:]  # a broken frame header


def _exif_rotated() -> bytes:
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display: stored 32x20, shown 20x32
    return _pil_bytes(Image.fromarray(_rgb(32, 20)), "JPEG", exif=exif.tobytes(), quality=95)


# name -> (file name, bytes factory, (w, h) as displayed or None when unreadable)
READABLE = {
    "png16": ("deep.png", lambda: _png_bytes((_rgb(24, 20).astype(np.uint16) * 257)), (24, 20)),
    "tiff16": ("deep.tif", lambda: cv2.imencode(".tif", _rgb(24, 20).astype(np.uint16) * 257)[1].tobytes(), (24, 20)),
    "gray": ("gray.png", lambda: _png_bytes(_rgb(24, 20)[:, :, 0]), (24, 20)),
    "rgba": ("alpha.png", lambda: _png_bytes(np.dstack([_rgb(24, 20), np.full((20, 24), 128, np.uint8)])), (24, 20)),
    "palette": ("palette.png", lambda: _pil_bytes(Image.fromarray(_rgb(24, 20)).convert("P"), "PNG"), (24, 20)),
    "cmyk": ("print.jpg", lambda: _pil_bytes(Image.fromarray(_rgb(24, 20)).convert("CMYK"), "JPEG"), (24, 20)),
    "exif": ("phone.jpg", _exif_rotated, (20, 32)),
    "upper": ("SHOUT.PNG", lambda: _png_bytes(_rgb(24, 20)), (24, 20)),
    "unicode": ("ünï cødé 画像.png", lambda: _png_bytes(_rgb(24, 20)), (24, 20)),
    "one_pixel": ("dot.png", lambda: _png_bytes(_rgb(1, 1)), (1, 1)),
}
BROKEN = {
    "corrupt_png": ("broken.png", _corrupt_png),
    "truncated_png": ("cut.png", lambda: _png_bytes(_rgb(24, 20))[:150]),
    "corrupt_jpeg": ("broken.jpg", _corrupt_jpeg),
    "truncated_jpeg": ("cut.jpg", lambda: _jpeg_bytes(_rgb(24, 20))[:-200]),
    "zero_bytes": ("empty.png", lambda: b""),
    "not_an_image": ("notes.jpeg", lambda: b"shopping list: eggs, milk\n" * 20),
    "html_as_webp": ("page.webp", lambda: b"<!doctype html><html><body>404 Not Found</body></html>"),
}


def write_file(folder: Path, name: str, data: bytes) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    p = folder / name
    p.write_bytes(data)
    return p


@pytest.fixture
def dsgan_file(tmp_path) -> Path:
    torch.manual_seed(0)
    p = tmp_path / "models" / "generator.safetensors"
    no_jpeg = JpegEstimate(kind="none", qualities=(), qmin=None, qmax=None, n_jpeg=0, n_total=1).to_json()
    ckpt.save_weights(
        p,
        DSGANGenerator(features=8, res_blocks=1).state_dict(),
        arch="DSGANGenerator",
        args={"features": 8, "res_blocks": 1},
        meta={"scale": 4, "jpeg": no_jpeg},
    )
    return p


def rrdb_file(path: Path, *, scale: int = 4, num_feat: int = 8) -> Path:
    torch.manual_seed(0)
    args = {"scale": scale, "num_in_ch": 3, "num_out_ch": 3, "num_feat": num_feat, "num_block": 1, "num_grow_ch": 32}
    return interop.save_generator(path, RRDBNet(**args).state_dict(), args)


@pytest.fixture
def esrgan_file(tmp_path) -> Path:
    return rrdb_file(tmp_path / "models" / "esrgan.safetensors")


# ---------------------------------------------------------------------------------------------
# A mixed folder: every readable image gets an output, every broken one is named and skipped


@pytest.mark.parametrize("kind", sorted(READABLE))
def test_make_pairs_and_upscale_accept_every_readable_kind(kind, tmp_path, capsys, dsgan_file, esrgan_file):
    name, make, (w, h) = READABLE[kind]
    src = tmp_path / "my photos"
    write_file(src, "good.png", _png_bytes(_rgb(32, 24, seed=5)))
    write_file(src, name, make())
    stem = Path(name).stem

    code, out, err = cli(
        capsys, "make-pairs", "--model", dsgan_file, "--hr", src, "--out", tmp_path / "pairs", "--device", "cpu"
    )
    assert code == 0 and "Traceback" not in err, err
    manifest = json.loads((tmp_path / "pairs" / "pairs.json").read_text())
    names = {p["name"] for p in manifest["pairs"]}
    if min(w, h) < 4:  # smaller than one LR pixel at x4: skipped with a reason, the rest still paired
        assert names == {"good"} and f"{name} is too small (1x1) for x4" in err
    else:
        assert names == {"good", stem}
        lr = cv2.imread(str(tmp_path / "pairs" / "lr" / f"{stem}.png"))
        assert lr.shape[:2] == (h // 4, w // 4)  # EXIF orientation applied before pairing

    code, out, err = cli(
        capsys,
        "upscale",
        "--model",
        esrgan_file,
        "--input",
        src,
        "--out",
        tmp_path / "sr",
        "--device",
        "cpu",
        "--tile",
        16,
        "--tile-pad",
        4,
    )
    assert code == 0 and "2 image(s) written" in out and "Traceback" not in err, err
    sr = cv2.imread(str(tmp_path / "sr" / f"{stem}.png"), cv2.IMREAD_UNCHANGED)
    assert sr.shape[:2] == (4 * h, 4 * w)
    if kind == "png16":
        assert sr.dtype == np.uint16
    if kind == "gray":
        assert sr.ndim == 2
    if kind == "rgba":
        assert sr.shape[2] == 4


@pytest.mark.parametrize("kind", sorted(BROKEN))
def test_broken_file_in_a_mixed_folder_is_named_and_skipped(kind, tmp_path, capsys, dsgan_file, esrgan_file):
    name, make = BROKEN[kind]
    src = tmp_path / "in"
    write_file(src, "good.png", _png_bytes(_rgb(32, 24, seed=5)))
    write_file(src, name, make())
    stem = Path(name).stem

    code, out, err = cli(
        capsys, "make-pairs", "--model", dsgan_file, "--hr", src, "--out", tmp_path / "pairs", "--device", "cpu"
    )
    assert code == 0 and "Traceback" not in err, err
    assert "1 pairs" in out
    warnings = [ln for ln in err.splitlines() if ln.startswith("warning:")]
    assert len(warnings) == 1 and name in warnings[0], err
    assert not (tmp_path / "pairs" / "lr" / f"{stem}.png").exists()
    assert [p["name"] for p in json.loads((tmp_path / "pairs" / "pairs.json").read_text())["pairs"]] == ["good"]

    code, out, err = cli(
        capsys,
        "upscale",
        "--model",
        esrgan_file,
        "--input",
        src,
        "--out",
        tmp_path / "sr",
        "--device",
        "cpu",
        "--tile",
        16,
        "--tile-pad",
        4,
    )
    assert code == 0 and "1 image(s) written" in out and "Traceback" not in err, err
    assert name in err
    assert sorted(p.name for p in (tmp_path / "sr").iterdir()) == ["good.png"]


@pytest.mark.parametrize("kind", sorted(BROKEN))
def test_broken_file_alone_stops_with_one_line(kind, tmp_path, capsys, dsgan_file, esrgan_file):
    name, make = BROKEN[kind]
    src = tmp_path / "in"
    bad = write_file(src, name, make())

    code, _, err = cli(
        capsys, "make-pairs", "--model", dsgan_file, "--hr", src, "--out", tmp_path / "pairs", "--device", "cpu"
    )
    assert_one_clear_error(code, err, str(bad))
    assert not (tmp_path / "pairs" / "pairs.json").exists()

    # a single file, then a folder holding only that file
    for given in (bad, src):
        code, out, err = cli(
            capsys, "upscale", "--model", esrgan_file, "--input", given, "--out", tmp_path / "sr", "--device", "cpu"
        )
        assert_one_clear_error(code, err, str(bad))
        assert not (tmp_path / "sr").exists() or not any((tmp_path / "sr").iterdir())


def test_degrade_train_with_only_broken_files_writes_nothing(tmp_path, capsys):
    hr = tmp_path / "hr"
    for name, make in BROKEN.values():
        write_file(hr, name, make())
    lr = make_folder(tmp_path / "lr", 2, (16, 16))
    code, _, err = cli(
        capsys,
        *dsgan_argv(hr, lr, tmp_path / "run", "--device", "cpu", flag="--lr"),
    )
    line = assert_one_clear_error(code, err, str(hr), "no usable HR image")
    assert "unreadable" in err and all(n in err for n, _ in BROKEN.values())
    assert "lower the crop" in line or "add larger images" in line
    assert not (tmp_path / "run" / "generator.safetensors").exists()


def test_images_smaller_than_the_training_patch(tmp_path, capsys):
    hr = make_folder(tmp_path / "hr", 2, (20, 20))
    lr = make_folder(tmp_path / "lr", 2, (16, 16))
    code, _, err = cli(
        capsys,
        *dsgan_argv(hr, lr, tmp_path / "run", "--device", "cpu", flag="--lr"),
    )
    assert_one_clear_error(code, err, "smaller than 128 px", "--set data.hr_crop=")
    assert not (tmp_path / "run").exists()

    pairs = tmp_path / "pairs"
    for i in range(2):
        write_file(pairs / "hr", f"p{i}.png", _png_bytes(_rgb(24, 24, seed=i)))
        write_file(pairs / "lr", f"p{i}.png", _png_bytes(_rgb(6, 6, seed=i)))
    code, _, err = cli(
        capsys, "sr-train", "--pairs", pairs, "--out", tmp_path / "sr", "--preset", "tiny", "--device", "cpu"
    )
    assert_one_clear_error(code, err, "smaller than 16 px", "hr_patch")
    assert not (tmp_path / "sr" / "psnr.safetensors").exists()


# ---------------------------------------------------------------------------------------------
# Folders and paths


def test_unicode_and_space_paths_everywhere(tmp_path, capsys):
    root = tmp_path / "Fotos Ürlaub 2024 — 東京"
    hr = make_folder(root / "clean HR", 2, (64, 64), seed=1)
    lr = make_folder(root / "real LR (phone)", 2, (32, 32), seed=2)
    out = root / "run one"
    code, stdout, err = cli(
        capsys,
        *dsgan_argv(
            hr,
            lr,
            out,
            "--iters",
            1,
            "--device",
            "cpu",
            "--set",
            "data.hr_crop=32",
            "--set",
            "model.features=8",
            "--set",
            "model.res_blocks=1",
            "--set",
            "optim.batch=2",
            "--set",
            "data.val_fraction=0",
            flag="--lr",
        ),
    )  # no realism table: paths are the point here
    assert code == 0, err
    code, stdout, err = cli(
        capsys, "make-pairs", "--model", out, "--hr", hr, "--out", root / "pairs ö", "--device", "cpu"
    )
    assert code == 0 and "2 pairs" in stdout, err
    assert (root / "pairs ö" / "lr" / "img_00.png").is_file()


def test_symlink_loops_do_not_hang_or_crash(tmp_path, capsys, dsgan_file, esrgan_file):
    src = tmp_path / "in"
    write_file(src, "good.png", _png_bytes(_rgb(32, 24)))
    os.symlink(src, src / "again")  # a folder loop
    os.symlink(src / "loop.png", src / "loop.png")  # a file that points at itself
    os.symlink(src / "b.png", src / "a.png")
    os.symlink(src / "a.png", src / "b.png")  # two files pointing at each other
    os.symlink(src / "gone.png", src / "dangling.png")
    code, out, err = cli(
        capsys, "make-pairs", "--model", dsgan_file, "--hr", src, "--out", tmp_path / "pairs", "--device", "cpu"
    )
    assert code == 0 and "1 pairs" in out and "Traceback" not in err, err
    code, out, err = cli(
        capsys,
        "upscale",
        "--model",
        esrgan_file,
        "--input",
        src,
        "--out",
        tmp_path / "sr",
        "--device",
        "cpu",
        "--tile",
        16,
    )
    assert code == 0 and "1 image(s) written" in out, err
    code, out, err = cli(
        capsys,
        "upscale",
        "--model",
        esrgan_file,
        "--input",
        src / "loop.png",
        "--out",
        tmp_path / "sr2",
        "--device",
        "cpu",
    )
    assert_one_clear_error(code, err, "loop.png")


def test_empty_folders(tmp_path, capsys, dsgan_file, esrgan_file):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "README.txt").write_text("no images here")
    lr = make_folder(tmp_path / "lr", 2, (32, 32))
    code, _, err = cli(
        capsys,
        *dsgan_argv(empty, lr, tmp_path / "run", flag="--lr"),
    )
    assert_one_clear_error(code, err, str(empty), "contains no images")
    assert not (tmp_path / "run").exists()
    code, _, err = cli(capsys, "make-pairs", "--model", dsgan_file, "--hr", empty, "--out", tmp_path / "pairs")
    assert_one_clear_error(code, err, str(empty), "contains no images")
    assert not (tmp_path / "pairs").exists()
    code, _, err = cli(capsys, "upscale", "--model", esrgan_file, "--input", empty, "--out", tmp_path / "sr")
    assert_one_clear_error(code, err, str(empty), "contains no images")
    (tmp_path / "pairs_in" / "hr").mkdir(parents=True)
    (tmp_path / "pairs_in" / "lr").mkdir()
    code, _, err = cli(
        capsys, "sr-train", "--pairs", tmp_path / "pairs_in", "--out", tmp_path / "sr-run", "--preset", "tiny"
    )
    assert_one_clear_error(code, err, "contains no images")
    code, _, err = cli(capsys, "sr-train", "--pairs", empty, "--out", tmp_path / "sr-run", "--preset", "tiny")
    assert_one_clear_error(code, err, "hr/", "make-pairs")
    assert not (tmp_path / "sr-run").exists()


def test_a_file_where_a_folder_belongs(tmp_path, capsys, dsgan_file):
    f = write_file(tmp_path, "photo.png", _png_bytes(_rgb(32, 32)))
    code, _, err = cli(capsys, "make-pairs", "--model", dsgan_file, "--hr", f, "--out", tmp_path / "pairs")
    assert_one_clear_error(code, err, str(f), "is not a folder")
    code, _, err = cli(capsys, "make-pairs", "--model", dsgan_file, "--hr", tmp_path, "--out", f)
    assert code == 2 and "Traceback" not in err and "photo.png" in err  # click: --out must be a folder


# ---------------------------------------------------------------------------------------------
# Pairs that disagree with the scale (sr-train)


def _pairs(root: Path, hr_size: tuple[int, int], lr_size: tuple[int, int], n: int = 2) -> Path:
    for i in range(n):
        write_file(root / "hr", f"p{i}.png", _png_bytes(_rgb(*hr_size, seed=i)))
        write_file(root / "lr", f"p{i}.png", _png_bytes(_rgb(*lr_size, seed=i)))
    return root


SR_SMALL = [
    "--preset",
    "tiny",
    "--set",
    "data.hr_patch=32",
    "--set",
    "model.num_feat=8",
    "--set",
    "model.num_block=1",
    "--set",
    "batch=2",
    "--device",
    "cpu",
]


@pytest.mark.parametrize(
    "hr_size, lr_size, scale, words",
    [
        ((64, 64), (32, 32), "4", ["pair p0", "64x64", "32x32", "exactly 128x128", "--scale"]),  # x2 pairs at x4
        ((64, 64), (16, 15), "4", ["pair p0", "16x15", "exactly 64x60"]),  # one LR row short
        ((64, 64), (16, 16), "2", ["pair p0", "exactly 32x32"]),  # x4 pairs at x2
    ],
)
def test_pairs_whose_sizes_disagree_with_the_scale(tmp_path, capsys, hr_size, lr_size, scale, words):
    pairs = _pairs(tmp_path / "pairs", hr_size, lr_size)
    code, _, err = cli(capsys, "sr-train", "--pairs", pairs, "--out", tmp_path / "run", "--scale", scale, *SR_SMALL)
    assert_one_clear_error(code, err, *words)
    assert not (tmp_path / "run").exists()


def test_pairs_json_scale_disagrees_with_training_scale(tmp_path, capsys):
    pairs = _pairs(tmp_path / "pairs", (64, 64), (16, 16))
    (pairs / "pairs.json").write_text(json.dumps({"scale": 4, "pairs": []}))
    code, _, err = cli(capsys, "sr-train", "--pairs", pairs, "--out", tmp_path / "run", "--scale", "2", *SR_SMALL)
    assert_one_clear_error(code, err, "x4", "x2", "--scale 4")


def test_unreadable_pair_image_stops_sr_train_naming_it(tmp_path, capsys):
    pairs = _pairs(tmp_path / "pairs", (64, 64), (16, 16))
    write_file(pairs / "lr", "p1.png", _png_bytes(_rgb(16, 16))[:100])
    code, _, err = cli(capsys, "sr-train", "--pairs", pairs, "--out", tmp_path / "run", *SR_SMALL)
    assert_one_clear_error(code, err, str(pairs / "lr" / "p1.png"))
    assert not (tmp_path / "run").exists()


# ---------------------------------------------------------------------------------------------
# Configuration


def test_unknown_key_and_wrong_type_in_a_toml_config(tmp_path, capsys):
    pairs = _pairs(tmp_path / "pairs", (64, 64), (16, 16))
    cfg = tmp_path / "sr.toml"
    cfg.write_text("[data]\nhr_patch = 32\n[model]\nnum_feats = 8\n")
    code, _, err = cli(capsys, "sr-train", "--pairs", pairs, "--out", tmp_path / "run", "--config", cfg)
    assert_one_clear_error(code, err, "model.num_feats", "valid keys", exit_code=2)
    cfg.write_text('batch = "eight"\n')
    code, _, err = cli(capsys, "sr-train", "--pairs", pairs, "--out", tmp_path / "run", "--config", cfg)
    assert_one_clear_error(code, err, "batch", "expected an integer", exit_code=2)
    cfg.write_text("[data\nhr_patch = 32\n")
    code, _, err = cli(capsys, "sr-train", "--pairs", pairs, "--out", tmp_path / "run", "--config", cfg)
    assert_one_clear_error(code, err, str(cfg), "not valid TOML", exit_code=2)
    code, _, err = cli(capsys, "sr-train", "--pairs", pairs, "--out", tmp_path / "run", "--set", "gan.w_adv=[1, 2]")
    assert_one_clear_error(code, err, "gan.w_adv", "expected a number", exit_code=2)
    code, _, err = cli(capsys, "sr-train", "--pairs", pairs, "--out", tmp_path / "run", "--set", "fs.enabled=yes")
    assert_one_clear_error(code, err, "fs.enabled", "true or false", exit_code=2)
    assert not (tmp_path / "run").exists()


def test_pipeline_file_errors_through_the_cli(tmp_path, capsys):
    p = tmp_path / "pipe.toml"
    p.write_text('[inputs]\nhr = "hr"\nreal_lr = "lr"\n[degrade]\npreset = "tiny"\n[sr]\nenabeld = false\n')
    for cmd in ("run", "status"):
        code, _, err = cli(capsys, cmd, p, "--out", tmp_path / "run", "--cache", tmp_path / "cache")
        assert_one_clear_error(code, err, "enabeld", "[sr]", exit_code=2)
    p.write_text('[inputs]\nhr = "hr"\nreal_lr = "lr"\n[upscale]\ntile = "big"\n')
    code, _, err = cli(capsys, "run", p, "--out", tmp_path / "run", "--cache", tmp_path / "cache")
    assert_one_clear_error(code, err, "upscale.tile", exit_code=2)
    assert not (tmp_path / "cache").exists() and not (tmp_path / "run").exists()


@pytest.mark.parametrize("alpha", ["1.01", "-0.1", "nan", "inf"])
def test_alpha_out_of_range(tmp_path, capsys, esrgan_file, alpha):
    code, _, err = cli(
        capsys,
        "interpolate",
        "--psnr",
        esrgan_file,
        "--gan",
        esrgan_file,
        "--alpha",
        alpha,
        "--out",
        tmp_path / "a.safetensors",
    )
    assert_one_clear_error(code, err, "alpha must be in [0, 1]")
    assert not (tmp_path / "a.safetensors").exists()


def test_sweep_out_of_range_writes_nothing(tmp_path, capsys, esrgan_file):
    code, _, err = cli(
        capsys,
        "interpolate",
        "--psnr",
        esrgan_file,
        "--gan",
        esrgan_file,
        "--sweep",
        "0:2:0.5",
        "--out",
        tmp_path / "sweep",
    )
    assert_one_clear_error(code, err, "alpha must be in [0, 1]")
    assert not (tmp_path / "sweep").exists()


# ---------------------------------------------------------------------------------------------
# Weights files for another network, another scale, or no network at all


def test_make_pairs_with_an_esrgan_file(tmp_path, capsys, esrgan_file):
    src = make_folder(tmp_path / "hr", 1, (32, 32))
    code, _, err = cli(capsys, "make-pairs", "--model", esrgan_file, "--hr", src, "--out", tmp_path / "pairs")
    assert_one_clear_error(code, err, str(esrgan_file), "RRDBNet", "not a degrade-train model")
    assert not (tmp_path / "pairs").exists()


def test_upscale_with_a_dsgan_file(tmp_path, capsys, dsgan_file):
    src = make_folder(tmp_path / "lr", 1, (16, 16))
    code, _, err = cli(capsys, "upscale", "--model", dsgan_file, "--input", src, "--out", tmp_path / "sr")
    assert_one_clear_error(code, err, str(dsgan_file))
    assert "ESRGAN" in error_lines(err)[0] or "RRDBNet" in error_lines(err)[0]
    assert not (tmp_path / "sr").exists()


@pytest.mark.parametrize(
    "other, words",
    [
        ({"num_feat": 16}, ["num_feat 16 (config: 8)", "model.*"]),
        ({"scale": 2}, ["scale 2 (config: 4)"]),
    ],
)
def test_sr_train_init_from_another_network(tmp_path, capsys, other, words):
    pairs = _pairs(tmp_path / "pairs", (64, 64), (16, 16))
    init = rrdb_file(tmp_path / "init.safetensors", **other)
    code, _, err = cli(capsys, "sr-train", "--pairs", pairs, "--out", tmp_path / "run", "--init", init, *SR_SMALL)
    assert_one_clear_error(code, err, str(init), *words)
    assert not (tmp_path / "run" / "psnr.safetensors").exists()


def test_interpolate_models_of_another_scale(tmp_path, capsys, esrgan_file):
    x2 = rrdb_file(tmp_path / "x2.safetensors", scale=2)
    code, _, err = cli(
        capsys, "interpolate", "--psnr", esrgan_file, "--gan", x2, "--alpha", "0.5", "--out", tmp_path / "a.safetensors"
    )
    assert_one_clear_error(code, err, "different networks", "scale 4 vs 2")
    assert not (tmp_path / "a.safetensors").exists()


def _header_file(path: Path, arch: str, args, scale: str = "4") -> Path:
    """A .safetensors whose header was written by someone else (not through ckpt.save_weights)."""
    from safetensors.torch import save_file

    sd = (
        DSGANGenerator(features=8, res_blocks=1).state_dict()
        if arch == "DSGANGenerator"
        else RRDBNet(num_feat=8, num_block=1).state_dict()
    )
    save_file(
        {k: v.contiguous() for k, v in sd.items()},
        str(path),
        metadata={"arch": arch, "args": args if isinstance(args, str) else json.dumps(args), "scale": scale},
    )
    return path


def _written(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


MODEL_FILES = {
    "zero_bytes": lambda p: _written(p, b""),
    "text": lambda p: _written(p, b"this is not a model\n"),
    "truncated": lambda p: _written(p, rrdb_file(p).read_bytes()[:300]),
    "bad_scale": lambda p: _header_file(p, "DSGANGenerator", {"features": 8, "res_blocks": 1}, scale="x4"),
    "bad_args_json": lambda p: _header_file(p, "DSGANGenerator", "{not json"),
    "unknown_args": lambda p: _header_file(p, "DSGANGenerator", {"features": 8, "res_blocks": 1, "dropout": 0.5}),
    "args_not_a_dict": lambda p: _header_file(p, "DSGANGenerator", [8, 1]),
    "rrdb_unknown_args": lambda p: _header_file(p, "RRDBNet", {"scale": 4, "num_feat": 8, "num_block": 1, "nope": 1}),
}


@pytest.mark.parametrize("kind", sorted(MODEL_FILES))
def test_broken_model_files_are_one_line(tmp_path, capsys, kind):
    model = MODEL_FILES[kind](tmp_path / "model.safetensors")
    src = make_folder(tmp_path / "in", 1, (16, 16))
    code, _, err = cli(capsys, "make-pairs", "--model", model, "--hr", src, "--out", tmp_path / "pairs")
    assert_one_clear_error(code, err, str(model))
    code, _, err = cli(capsys, "upscale", "--model", model, "--input", src, "--out", tmp_path / "sr")
    assert_one_clear_error(code, err, str(model))
    pth = tmp_path / "model.pth"
    pth.write_bytes(model.read_bytes())
    code, _, err = cli(capsys, "upscale", "--model", pth, "--input", src, "--out", tmp_path / "sr")
    assert_one_clear_error(code, err, str(pth))
    assert not (tmp_path / "pairs").exists() and not (tmp_path / "sr").exists()


def test_run_folder_without_weights(tmp_path, capsys):
    run = tmp_path / "unfinished run"
    (run / "ckpt").mkdir(parents=True)
    src = make_folder(tmp_path / "in", 1, (16, 16))
    code, _, err = cli(capsys, "make-pairs", "--model", run, "--hr", src, "--out", tmp_path / "pairs")
    assert_one_clear_error(code, err, str(run), "did degrade-train finish")
    code, _, err = cli(capsys, "upscale", "--model", run, "--input", src, "--out", tmp_path / "sr")
    assert_one_clear_error(code, err, str(run), "sr-train run folder")


# ---------------------------------------------------------------------------------------------
# A huge image: tiling keeps memory bounded

HUGE = textwrap.dedent(
    """
    import json, resource, sys
    import cv2, numpy as np, torch
    from srpipe.engine import ckpt
    from srpipe.degrade.archs import DSGANGenerator
    from srpipe.degrade.pairs import make_pairs
    root, F = sys.argv[1], int(sys.argv[2])
    torch.set_num_threads(1)  # tiny per-tile work: OpenMP sync would dominate
    ckpt.save_weights(root + "/g.safetensors", DSGANGenerator(features=F, res_blocks=0).state_dict(),
                      arch="DSGANGenerator", args={"features": F, "res_blocks": 0}, meta={"scale": 4})
    small = np.random.default_rng(0).integers(0, 255, (94, 94, 3), dtype=np.uint8)
    cv2.imwrite(root + "/hr/huge.jpg", cv2.resize(small, (3000, 3000), interpolation=cv2.INTER_CUBIC))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    make_pairs(model=root + "/g.safetensors", hr_dir=root + "/hr", out_dir=root + "/pairs", tile=64, device="cpu")
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"growth": after - before}))
    """
)


@pytest.mark.slow
def test_huge_image_is_tiled_with_bounded_memory(tmp_path):
    """make-pairs on a 3000x3000 photo with 64-pixel tiles and a wide (128-feature) generator.

    Run whole, that generator's first activation alone is 750*750*128 float32 = 288 MB and a
    forward pass holds at least two of them; tiled, each is (64 + 2*pad)^2 * 128 * 4 bytes = 2.6 MB.
    The image itself (3000x3000 RGB: 27 MB as uint8, 108 MB as float32) is held on the host and
    copied a few times to decode, crop and write it. So the peak RSS growth must stay below what one
    whole-image activation pair alone would need.
    """
    (tmp_path / "hr").mkdir()
    features = 128
    r = subprocess.run(
        [sys.executable, "-c", HUGE, str(tmp_path), str(features)], capture_output=True, text=True, timeout=300
    )
    assert r.returncode == 0, r.stderr
    growth = json.loads(r.stdout.strip().splitlines()[-1])["growth"]
    whole_image_activations = 2 * 750 * 750 * features * 4
    assert growth < whole_image_activations, (growth, whole_image_activations)
    lr = cv2.imread(str(tmp_path / "pairs" / "lr" / "huge.png"))
    assert lr.shape == (750, 750, 3)


def test_crop_smaller_than_the_loss_window_is_a_config_error(tmp_path, capsys):
    hr = make_folder(tmp_path / "hr", 2, (32, 32))
    code, _, err = cli(
        capsys,
        *dsgan_argv(hr, hr, tmp_path / "run", "--set", "data.hr_crop=16", flag="--lr"),
    )
    assert_one_clear_error(code, err, "loss.kernel = 5", "raise data.hr_crop to at least 20", exit_code=2)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("scale", [1, 2, 3, 4])
def test_tiny_images_upscale_at_every_scale(tmp_path, capsys, scale):
    """1x1, 1x7 and 5x1 inputs: x1/x2 models pixel-unshuffle, so the input is padded to the unshuffle grid."""
    model = rrdb_file(tmp_path / f"x{scale}.safetensors", scale=scale)
    src = tmp_path / "in"
    sizes = [(1, 1), (1, 7), (5, 1)]
    for w, h in sizes:
        write_file(src, f"i{w}x{h}.png", _png_bytes(_rgb(w, h)))
    code, out, err = cli(
        capsys, "upscale", "--model", model, "--input", src, "--out", tmp_path / "sr", "--device", "cpu"
    )
    assert code == 0 and "3 image(s) written" in out, err
    for w, h in sizes:
        assert cv2.imread(str(tmp_path / "sr" / f"i{w}x{h}.png")).shape == (h * scale, w * scale, 3)
