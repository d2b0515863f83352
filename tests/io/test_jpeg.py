"""JPEG stage: quality from quantization tables and from decoded pixels, --jpeg, make-pairs' JPEG stage."""

from __future__ import annotations

import io
import json
import random
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tests.helpers import ROOT, make_folder
from srpipe.engine import ckpt
from srpipe.io import jpeg
from srpipe.cli import main
from srpipe.degrade.archs import DSGANGenerator
from srpipe.degrade.pairs import make_pairs
from srpipe.errors import UsageError
from srpipe.io.imageio import read_image
from srpipe.eval.realism.measures import blockiness
from srpipe.io.resize import bicubic_down

DEMO_HR = ROOT / "data" / "demo" / "hr"
QUALITIES = (10, 30, 50, 75, 90, 95)


@pytest.fixture(scope="module")
def photo() -> torch.Tensor:
    """A 128x128 crop of a never-compressed photo (McMaster, a lossless TIF source)."""
    img, _ = read_image(DEMO_HR / "mcmaster_02.png")
    return img[:, 100:228, 150:278].contiguous()


def _jpeg_bytes(img: torch.Tensor, q: int | None, **kw) -> bytes:
    a = (img.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, "JPEG", **({} if q is None else {"quality": q}), **kw)
    return buf.getvalue()


@pytest.mark.parametrize("q", QUALITIES)
def test_quality_from_quantization_tables_is_exact(photo, q):
    with Image.open(io.BytesIO(_jpeg_bytes(photo, q))) as im:
        tables = im.quantization
    assert jpeg.quality_from_qtables(tables) == q
    assert jpeg.fit_qtables(tables) == (q, 0.0)


def test_ijg_scaling_matches_libjpeg_at_50_and_clips():
    assert list(jpeg.ijg_table(jpeg.BASE_LUMA, 50)) == list(jpeg.BASE_LUMA)
    assert jpeg.ijg_table(jpeg.BASE_LUMA, 100).max() == 1 and jpeg.ijg_table(jpeg.BASE_LUMA, 1).min() == 255


def test_custom_quantization_table_is_flagged(photo):
    rng = np.random.default_rng(0)
    custom = [int(v) for v in rng.integers(2, 60, 64)]  # no IJG quality scales to this
    data = _jpeg_bytes(photo, None, qtables=[custom])  # a quality would rescale the table
    with Image.open(io.BytesIO(data)) as im:
        tables = im.quantization
    assert list(tables[0]) == custom
    q, residual = jpeg.fit_qtables(tables)
    assert residual > jpeg.IJG_RESIDUAL and 1 <= q <= 100
    assert jpeg.quality_from_qtables(tables) is None


@pytest.mark.parametrize("q", QUALITIES)
def test_quality_from_decoded_pixels_within_5(photo, q, tmp_path):
    (tmp_path / "a.jpg").write_bytes(_jpeg_bytes(photo, q))
    decoded, _ = read_image(tmp_path / "a.jpg")  # what a PNG re-save of the JPEG would hold
    got = jpeg.quality_from_pixels(decoded)
    assert got is not None and abs(got - q) <= 5
    cropped = decoded[:, 3:, 5:]  # the grid no longer starts at the corner
    got = jpeg.quality_from_pixels(cropped)
    assert got is not None and abs(got - q) <= 5


def test_never_compressed_images_show_no_lattice(photo, tmp_path):
    assert jpeg.quality_from_pixels(photo) is None
    assert jpeg.quality_from_pixels(bicubic_down(photo, 2)) is None
    for p in sorted(make_folder(tmp_path / "smooth", 2, (96, 80)).iterdir()):
        assert jpeg.quality_from_pixels(read_image(p)[0]) is None
    # the threshold separates the measured residuals with a margin, both sides
    clean = np.nanmin(jpeg.lattice_residuals(photo))
    decoded = jpeg.jpeg_compress(photo, 95)
    assert clean > jpeg.LATTICE_THRESHOLD + 0.02 > np.nanmin(jpeg.lattice_residuals(decoded)) + 0.04


def test_clustered_block_means_are_no_lattice():
    """Block means near a multiple of quality 1's step (255) are not a JPEG: DC is left out.

    Level 160 plus noise of 3 levels: every block's DC is about 8 * 32 = 256 = 1.004 steps of 255
    (std 0.012 steps); with DC in the fit this never-compressed image read as quality 1.
    """
    rng = np.random.default_rng(0)
    y = 160.0 + rng.normal(0, 3, (128, 128))
    img = torch.from_numpy(np.clip(np.round(y), 0, 255) / 255).float().expand(3, -1, -1).contiguous()
    res = jpeg.lattice_residuals(img)
    assert np.isnan(res[:3]).all()  # no AC coefficient survives steps of 255: too few to judge
    assert jpeg.quality_from_pixels(img) is None


def test_estimate_folder_from_tables_pixels_and_none(photo, tmp_path):
    jpgs = tmp_path / "jpgs"
    jpgs.mkdir()
    for i, q in enumerate((40, 60, 80)):
        (jpgs / f"a{i}.jpg").write_bytes(_jpeg_bytes(photo, q))
    est = jpeg.estimate_folder(sorted(jpgs.iterdir()))
    assert est.kind == "qtables" and sorted(est.qualities) == [40, 60, 80] and (est.n_jpeg, est.n_total) == (3, 3)
    assert est.qmin == 44 and est.qmax == 76  # 10th/90th percentiles
    assert "3/3 JPEG files, quality 44-76 (median 60) from quantization tables" in est.describe()
    assert jpeg.JpegEstimate.from_json(json.loads(json.dumps(est.to_json()))) == est

    from srpipe.io.imageio import write_png

    pngs = tmp_path / "pngs"
    for i, q in enumerate((40, 60)):
        write_png(pngs / f"d{i}.png", jpeg.jpeg_compress(photo, q))
    write_png(pngs / "clean.png", photo)
    est = jpeg.estimate_folder(sorted(pngs.iterdir()))
    assert est.kind == "pixels" and est.n_jpeg == 2 and est.n_total == 3
    assert all(abs(a - b) <= 5 for a, b in zip(est.qualities, (40, 60)))

    clean = make_folder(tmp_path / "clean", 3, (64, 64))
    est = jpeg.estimate_folder(sorted(clean.iterdir()))
    assert est.kind == "none" and est.qualities == () and est.n_total == 3


def test_jpeg_compress_keeps_size_and_matches_pil(photo):
    odd = photo[:, :37, :51]
    out = jpeg.jpeg_compress(odd, 30)
    assert out.shape == odd.shape and out.dtype == torch.float32
    ref, _ = read_image_bytes(_jpeg_bytes(odd, 30, subsampling=2))
    assert torch.equal(out, ref)
    assert (out - odd).abs().mean() > 1 / 255  # it really is lossy
    with pytest.raises(jpeg.SrpipeError, match="1..100"):
        jpeg.jpeg_compress(odd, 0)


def read_image_bytes(data: bytes):
    with Image.open(io.BytesIO(data)) as im:
        a = np.asarray(im.convert("RGB"))
    return torch.from_numpy(a.astype(np.float32) / 255).permute(2, 0, 1), None


@pytest.mark.parametrize(
    "text, spec",
    [
        ("auto", jpeg.JpegSpec("auto")),
        ("off", jpeg.JpegSpec("off")),
        ("OFF", jpeg.JpegSpec("off")),
        ("30", jpeg.JpegSpec("fixed", 30, 30)),
        ("1", jpeg.JpegSpec("fixed", 1, 1)),
        ("30:90", jpeg.JpegSpec("range", 30, 90)),
        ("50:50", jpeg.JpegSpec("range", 50, 50)),
    ],
)
def test_parse_jpeg_valid(text, spec):
    assert jpeg.parse_jpeg(text) == spec
    assert jpeg.parse_jpeg(str(spec)) == spec  # the stable string round-trips


@pytest.mark.parametrize(
    "text, message",
    [
        ("0", "--jpeg 0: quality must be 1..100"),
        ("101", "--jpeg 101: quality must be 1..100"),
        ("90:30", "--jpeg 90:30: QMIN > QMAX"),
        ("10:200", "quality must be 1..100"),
        ("high", "use auto, off, a quality Q"),
        ("1:2:3", "use auto, off"),
        ("-5", "use auto, off"),
        ("", "use auto, off"),
    ],
)
def test_parse_jpeg_errors(text, message):
    with pytest.raises(UsageError) as e:
        jpeg.parse_jpeg(text)
    assert message in str(e.value) and e.value.exit_code == 2


def test_draw_quality_modes():
    est = jpeg.JpegEstimate("qtables", (40, 60, 80), 44, 76, 3, 3)
    r = random.Random(0)
    assert jpeg.draw_quality(jpeg.parse_jpeg("off"), est, r) is None
    assert jpeg.draw_quality(jpeg.parse_jpeg("42"), est, r) == 42
    assert {jpeg.draw_quality(jpeg.parse_jpeg("20:22"), None, r) for _ in range(200)} == {20, 21, 22}
    assert {jpeg.draw_quality(jpeg.parse_jpeg("auto"), est, r) for _ in range(200)} == {40, 60, 80}
    assert jpeg.draw_quality(jpeg.parse_jpeg("auto"), jpeg.NONE_ESTIMATE, r) is None
    assert jpeg.draw_quality(jpeg.parse_jpeg("auto"), None, r) is None
    g = np.random.default_rng(0)
    ranged = jpeg.JpegEstimate("pixels", (), 50, 51, 0, 4)
    assert {jpeg.draw_quality(jpeg.parse_jpeg("auto"), ranged, g) for _ in range(100)} == {50, 51}


# ---------------------------------------------------------------- make-pairs


@pytest.fixture
def model_dir(tmp_path) -> Path:
    """A degrade-train-like run folder, no jpeg.json yet: a tiny generator that passes the image through.

    A random generator's output is nearly flat grey (sigmoid of small values), which JPEG keeps flat:
    head copies RGB into 3 channels, the residual block adds 0, tail = sigmoid(4x - 2) (a tone curve).
    """
    G = DSGANGenerator(features=8, res_blocks=1)
    with torch.no_grad():
        for m in G.modules():
            if isinstance(m, torch.nn.Conv2d):
                m.weight.zero_()
                m.bias.zero_()
        for c in range(3):
            G.head[0].weight[c, c, 1, 1] = 1.0
            G.tail.weight[c, c, 1, 1] = 4.0
        G.tail.bias.fill_(-2.0)
    d = tmp_path / "model"
    ckpt.save_weights(
        d / "generator.safetensors",
        G.state_dict(),
        arch="DSGANGenerator",
        args={"features": 8, "res_blocks": 1},
        meta={"scale": 2},
    )
    return d


@pytest.fixture
def hr_photos(tmp_path) -> Path:
    from srpipe.io.imageio import write_png

    img, _ = read_image(DEMO_HR / "mcmaster_02.png")
    d = tmp_path / "hrin"
    for i in range(2):
        write_png(d / f"p{i}.png", img[:, 64 * i : 64 * i + 130, 100:230])  # 130x130: LR 65x65, not a multiple of 8
    return d


def _lr(out: Path, name: str) -> torch.Tensor:
    return read_image(out / "lr" / f"{name}.png")[0]


def test_make_pairs_jpeg_raises_blockiness_keeps_sizes_and_records(model_dir, hr_photos, tmp_path):
    off = make_pairs(model=model_dir, hr_dir=hr_photos, out_dir=tmp_path / "off", device="cpu", jpeg="off")
    q30 = make_pairs(model=model_dir, hr_dir=hr_photos, out_dir=tmp_path / "q30", device="cpu", jpeg="30")
    for name in ("p0", "p1"):
        a, b = _lr(tmp_path / "off", name), _lr(tmp_path / "q30", name)
        assert a.shape == b.shape == (3, 65, 65)
        assert blockiness(b) > blockiness(a) + 0.1
        assert jpeg.quality_from_pixels(a) is None and abs(jpeg.quality_from_pixels(b) - 30) <= 5
    assert off["jpeg"]["qualities"] == {"p0": None, "p1": None} and off["jpeg"]["spec"]["mode"] == "off"
    assert q30["jpeg"]["qualities"] == {"p0": 30, "p1": 30} and q30["jpeg"]["spec"]["text"] == "30"
    on_disk = json.loads((tmp_path / "q30" / "pairs.json").read_text())
    assert on_disk["jpeg"] == q30["jpeg"]
    assert (tmp_path / "q30" / "hr" / "p0.png").read_bytes() == (tmp_path / "off" / "hr" / "p0.png").read_bytes()


def test_make_pairs_auto_follows_the_models_estimate(model_dir, hr_photos, tmp_path, caplog):
    make_pairs(model=model_dir, hr_dir=hr_photos, out_dir=tmp_path / "off", device="cpu", jpeg="off")
    # no estimate stored (an older model): auto applies nothing and says so
    m = make_pairs(model=model_dir, hr_dir=hr_photos, out_dir=tmp_path / "old", device="cpu")
    assert "has no JPEG estimate" in caplog.text and m["jpeg"]["estimate"] is None
    none = jpeg.JpegEstimate("none", (), None, None, 0, 5, "")
    (model_dir / "jpeg.json").write_text(json.dumps(none.to_json()))
    m = make_pairs(model=model_dir, hr_dir=hr_photos, out_dir=tmp_path / "none", device="cpu")
    assert m["jpeg"]["estimate"]["kind"] == "none" and m["jpeg"]["qualities"] == {"p0": None, "p1": None}
    for out in ("old", "none"):
        assert (tmp_path / out / "lr" / "p0.png").read_bytes() == (tmp_path / "off" / "lr" / "p0.png").read_bytes()

    est = jpeg.JpegEstimate("qtables", (20, 25, 35), 20, 35, 3, 3, "")
    (model_dir / "jpeg.json").write_text(json.dumps(est.to_json()))
    runs = [
        make_pairs(
            model=model_dir / "generator.safetensors", hr_dir=hr_photos, out_dir=tmp_path / f"auto{i}", device="cpu"
        )
        for i in range(2)
    ]
    qs = runs[0]["jpeg"]["qualities"]
    assert set(qs.values()) <= {20, 25, 35} and runs[1]["jpeg"]["qualities"] == qs  # deterministic
    assert (tmp_path / "auto0" / "lr" / "p1.png").read_bytes() == (tmp_path / "auto1" / "lr" / "p1.png").read_bytes()
    # the draw depends on the image name and the seed only, not on the folder's order or content
    assert qs["p0"] == jpeg.draw_quality(jpeg.parse_jpeg("auto"), est, jpeg.image_rng("p0", 0))


def test_cli_make_pairs_jpeg_option(model_dir, hr_photos, tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        main(
            [
                "make-pairs",
                "--model",
                str(model_dir),
                "--hr",
                str(hr_photos),
                "--out",
                str(tmp_path / "o"),
                "--device",
                "cpu",
                "--jpeg",
                "90:30",
            ]
        )
    err = capsys.readouterr().err
    assert e.value.code == 2 and "--jpeg 90:30: QMIN > QMAX" in err and "Traceback" not in err
    assert not (tmp_path / "o").exists()
    with pytest.raises(SystemExit) as e:
        main(
            [
                "make-pairs",
                "--model",
                str(model_dir),
                "--hr",
                str(hr_photos),
                "--out",
                str(tmp_path / "o"),
                "--device",
                "cpu",
                "--jpeg",
                "40:45",
                "--jpeg-seed",
                "7",
            ]
        )
    assert e.value.code == 0
    m = json.loads((tmp_path / "o" / "pairs.json").read_text())
    assert m["jpeg"]["seed"] == 7 and all(40 <= q <= 45 for q in m["jpeg"]["qualities"].values())
    assert "2/2 LR image(s) compressed" in capsys.readouterr().err


def test_degrade_train_stores_the_real_lrs_jpeg_stage_and_make_pairs_uses_it(tiny_hr, tmp_path, caplog):
    from srpipe.config import RunOptions, build_config
    from srpipe.degrade.config import DegradeConfig
    from srpipe.degrade.train import train

    real = tmp_path / "real_jpg"
    real.mkdir()
    for i, p in enumerate(sorted(make_folder(tmp_path / "lrpng", 4, (32, 32), seed=2).iterdir())):
        (real / f"{p.stem}.jpg").write_bytes(_jpeg_bytes(read_image(p)[0], (35, 45, 55, 65)[i]))
    cfg = build_config(
        DegradeConfig,
        preset={
            "data": {"hr_crop": 32, "val_fraction": 0.0},
            "model": {"features": 8, "res_blocks": 1, "d_features": 8},
            "loss": {"perceptual": "none"},
            "optim": {"batch": 2, "iters": 1},
        },
    )
    gpath = train(cfg, hr_dir=tiny_hr, real_lr_dir=real, out_dir=tmp_path / "run", run=RunOptions(device="cpu"))
    assert "JPEG stage of the real LR: 4/4 JPEG files, quality" in caplog.text
    est = jpeg.JpegEstimate.from_json(json.loads((tmp_path / "run" / "jpeg.json").read_text()))
    assert est.kind == "qtables" and sorted(est.qualities) == [35, 45, 55, 65]
    lone = tmp_path / "lone" / "g.safetensors"  # the header alone carries the estimate
    lone.parent.mkdir()
    lone.write_bytes(gpath.read_bytes())
    m = make_pairs(model=lone, hr_dir=tiny_hr, out_dir=tmp_path / "pairs", device="cpu")
    assert m["jpeg"]["estimate"]["qualities"] == list(est.qualities)
    assert set(m["jpeg"]["qualities"].values()) <= {35, 45, 55, 65} and len(m["jpeg"]["qualities"]) == 6


def test_eval_degradation_reports_the_jpeg_stage_of_both_sets(photo, tmp_path, capsys):
    from srpipe.io.imageio import write_png

    real, syn, hr = tmp_path / "real", tmp_path / "syn", tmp_path / "hr"
    real.mkdir()
    for i in range(3):
        crop = photo[:, 32 * i : 32 * i + 64, :64]
        (real / f"r{i}.jpg").write_bytes(_jpeg_bytes(bicubic_down(crop, 2), 40))
        write_png(hr / f"p{i}.png", crop)
        write_png(syn / f"p{i}.png", bicubic_down(crop, 2))
    args = ["eval-degradation", "--real", str(real), "--synthetic", str(syn), "--hr", str(hr), "--no-inception"]
    with pytest.raises(SystemExit) as e:
        main(args)
    out = capsys.readouterr().out
    assert e.value.code == 0
    assert (
        "JPEG stage: real LR: 3/3 JPEG files, quality 40-40 (median 40) from quantization tables; "
        "synthetic: no JPEG compression found (3 image(s))"
    ) in " ".join(out.split())
    with pytest.raises(SystemExit) as e:
        main(args + ["--json"])
    rep = json.loads(capsys.readouterr().out)
    assert rep["jpeg"]["real"]["qualities"] == [40, 40, 40] and rep["jpeg"]["synthetic"]["kind"] == "none"


def test_pipeline_pairs_jpeg_enters_the_stage_keys(tmp_path):
    from srpipe.pipeline.spec import load_pipeline
    from srpipe.pipeline.stages import build_stages

    def stages(extra: str):
        f = tmp_path / "p.toml"
        f.write_text(
            '[inputs]\nhr = "hr"\nreal_lr = "lr"\ntest_hr = "t"\n[degrade]\npreset = "tiny"\n'
            f"[sr]\nenabled = false\n[pairs]\n{extra}\n"
        )
        return {s.name: s for s in build_stages(load_pipeline(f))}

    assert stages("")["pairs"].params == {"cleanup_factor": 1, "jpeg": "auto"}
    st = stages('jpeg = "30:050"')
    assert st["pairs"].params["jpeg"] == st["test_pairs"].params["jpeg"] == "30:50"  # the stable string
    with pytest.raises(UsageError, match=r"pairs\.jpeg: --jpeg 0: quality must be 1\.\.100"):
        stages('jpeg = "0"')
