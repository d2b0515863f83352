"""Degradation-realism statistics and the report ranking synthetic vs bicubic LR."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from srpipe.errors import SrpipeError
from srpipe.eval import realism
from srpipe.eval.realism import measures, text
from srpipe.io.resize import bicubic_down


def _texture(h: int, w: int, seed: int) -> np.ndarray:
    """Photo-like (H, W, 3) float32 in [0, 1]: smooth regions plus blurred detail, no periodic grid.

    (Upscaled random grids, as in helpers.make_folder, repeat every upscale-factor pixels, which
    would look like an 8x8 block grid to the blockiness measure.)
    """
    rng = np.random.default_rng(seed)
    coarse = cv2.GaussianBlur(rng.random((h, w, 3)).astype(np.float32), (0, 0), 12)
    fine = cv2.GaussianBlur(rng.random((h, w, 3)).astype(np.float32), (0, 0), 1.2)
    coarse = (coarse - coarse.mean()) / (coarse.std() + 1e-6)
    fine = (fine - fine.mean()) / (fine.std() + 1e-6)
    img = 0.5 + 0.15 * coarse + 0.05 * fine
    # a few flat patches, as skies and walls are
    for _ in range(3):
        y, x = rng.integers(0, h - h // 3), rng.integers(0, w - w // 3)
        img[y : y + h // 3, x : x + w // 3] = rng.uniform(0.25, 0.75, 3)
    return np.clip(img, 0, 1).astype(np.float32)


def _t(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a)).permute(2, 0, 1).float()


def _jpeg(x: torch.Tensor, quality: int) -> torch.Tensor:
    u8 = (x.permute(1, 2, 0).numpy()[:, :, ::-1] * 255).round().astype(np.uint8)
    ok, buf = cv2.imencode(".jpg", u8, [cv2.IMWRITE_JPEG_QUALITY, quality])
    dec = cv2.imdecode(buf, cv2.IMREAD_COLOR)[:, :, ::-1]
    return _t(dec.astype(np.float32) / 255)


def _noisy(x: torch.Tensor, sigma: float, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (x + torch.randn(x.shape, generator=g) * sigma / 255).clamp(0, 1)


def test_noise_estimator_recovers_known_sigma():
    h = w = 96
    yy, xx = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    flat_ish = torch.stack([0.3 + 0.3 * xx, 0.4 + 0.2 * yy, 0.5 + 0.1 * torch.sin(3 * xx + 2 * yy)])
    for sigma in (3.0, 8.0):
        est = measures.noise_sigma(_noisy(flat_ish, sigma, 1)) * 255
        assert est.shape == (3,)
        assert torch.allclose(est, torch.full((3,), sigma, dtype=est.dtype), rtol=0.15), est
    assert (measures.noise_sigma(flat_ish) * 255).max() < 0.5
    # on a textured image the flat blocks are found: the estimate is not the texture's spread
    tex = _t(_texture(128, 128, 0))
    est = measures.noise_sigma(_noisy(tex, 5.0, 2)) * 255
    assert torch.allclose(est, torch.full((3,), 5.0, dtype=est.dtype), rtol=0.2), est
    assert (tex * 255).std() > 20  # a global std would be far off


def test_noise_is_per_channel():
    x = torch.full((3, 64, 64), 0.5)
    g = torch.Generator().manual_seed(0)
    x[1] += torch.randn(64, 64, generator=g) * 10 / 255
    est = measures.noise_sigma(x) * 255
    assert est[0] < 0.5 and est[2] < 0.5 and 8.5 < est[1] < 11.5


def test_blockiness_higher_for_jpeg_than_png():
    x = _t(_texture(128, 128, 3))
    png = measures.blockiness(x)
    q10 = measures.blockiness(_jpeg(x, 10))
    q90 = measures.blockiness(_jpeg(x, 90))
    assert png < measures.BLOCKY < q10 and q90 < q10
    # the grid is found at any offset (a cropped JPEG)
    assert measures.blockiness(_jpeg(x, 10)[:, 3:, 5:]) > measures.BLOCKY


def test_spectrum_sees_noise_and_blur():
    x = _t(_texture(96, 96, 4))
    bins = 16
    band = slice(8, 16)
    base = measures.radial_spectrum(x, bins)[band].log10().mean()
    noisy = measures.radial_spectrum(_noisy(x, 15, 0), bins)[band].log10().mean()
    blurred = (
        measures.radial_spectrum(_t(cv2.GaussianBlur(_texture(96, 96, 4), (0, 0), 1.5)), bins)[band].log10().mean()
    )
    assert noisy > base + 0.5 and blurred < base - 0.5  # more than a factor 3 in power either way


def _sets(n: int = 5):
    """'real' LR: noisy (sigma 8) JPEG q50 images; HR: other images; synthetic: the HR degraded alike."""
    real = [_jpeg(_noisy(bicubic_down(_t(_texture(128, 128, 100 + i)), 2), 8, i), 50) for i in range(n)]
    hr = [_t(_texture(128, 128, 200 + i)) for i in range(n)]
    synthetic = [_jpeg(_noisy(bicubic_down(h, 2), 8, 50 + i), 50) for i, h in enumerate(hr)]
    return real, synthetic, hr


def test_report_ranks_matching_degradation_closer_than_bicubic():
    real, synthetic, hr = _sets()
    rep = realism.degradation_report(real, synthetic, hr, 2, cfg=realism.RealismConfig(inception=False))
    rows = {r["metric"]: r for r in rep["rows"]}
    assert set(rows) == {"noise", "hf_spectrum", "band_level", "color", "blockiness"}
    assert rep["counts"] == {"real": 5, "synthetic": 5, "bicubic": 5}
    for m in ("noise", "hf_spectrum", "blockiness"):
        assert rows[m]["closer"] == "synthetic", rows[m]
        assert rows[m]["synthetic_distance"] < rows[m]["bicubic_distance"]
    assert len(rows["noise"]["real"]) == 3 and rows["blockiness"]["real"] > measures.BLOCKY
    assert any("cannot make blocks" in n for n in rep["notes"])  # real LR is blocky: say what DSGAN can't do
    md = text.report_markdown(rep)
    assert "| metric | synthetic | bicubic |" in md and "noise sigma" in md


def test_report_identical_sets_are_at_distance_zero():
    real, _, hr = _sets(3)
    bic = [bicubic_down(h, 2) for h in hr]
    rep = realism.degradation_report(real, bic, hr, 2, cfg=realism.RealismConfig(inception=False))
    for r in rep["rows"]:
        assert r["synthetic_distance"] == pytest.approx(r["bicubic_distance"], abs=1e-9) and r["closer"] == "tie"


def test_report_kid_fid_rows_with_inception(torch_home):
    real, synthetic, hr = _sets(3)
    cfg = realism.RealismConfig(dims=64, patches=2, patch_size=32)
    rep = realism.degradation_report(real, synthetic, hr, 2, cfg=cfg)
    rows = {r["metric"]: r for r in rep["rows"]}
    assert rows["kid"]["patches"] == {"real": 6, "synthetic": 6, "bicubic": 6}
    for m in ("kid", "fid"):
        assert np.isfinite(rows[m]["synthetic_distance"]) and np.isfinite(rows[m]["bicubic_distance"])
    assert any("upsamples" in n for n in rep["notes"])


def test_report_without_inception_weights_says_so(empty_torch_home):
    real, synthetic, hr = _sets(2)
    rep = realism.degradation_report(real, synthetic, hr, 2, cfg=realism.RealismConfig(patches=1, patch_size=32))
    assert {r["metric"] for r in rep["rows"]} == {"noise", "hf_spectrum", "band_level", "color", "blockiness"}
    assert any("KID/FID skipped" in n and "pt_inception" in n for n in rep["notes"])


def _write(folder: Path, imgs, ext=".png"):
    folder.mkdir(parents=True, exist_ok=True)
    for i, x in enumerate(imgs):
        u8 = (x.permute(1, 2, 0).numpy()[:, :, ::-1] * 255).round().astype(np.uint8)
        cv2.imwrite(str(folder / f"im_{i:02d}{ext}"), u8)
    return folder


def test_folder_report_infers_scale(tmp_path):
    real, synthetic, hr = _sets(2)
    r = _write(tmp_path / "real", real)
    s = _write(tmp_path / "syn", synthetic)
    h = _write(tmp_path / "hr", hr)
    rep = realism.folder_report(r, s, h, cfg=realism.RealismConfig(inception=False))
    assert rep["scale"] == 2 and rep["folders"]["real"] == str(r)
    other = _write(tmp_path / "other", hr[:1])
    (other / "im_00.png").rename(other / "unrelated.png")
    with pytest.raises(SrpipeError, match="cannot infer the scale"):
        realism.folder_report(r, s, other, cfg=realism.RealismConfig(inception=False))


def test_advice_suggests_only_what_the_pairs_did_not_do():
    """A blocky real LR: JPEG is suggested only when the synthetic LR's pairs.json shows no JPEG stage."""
    real, synthetic, hr = _sets(3)
    dsgan_jpeg = {"generator": {}, "jpeg": {"spec": {"mode": "auto"}, "qualities": {"a": 48, "b": 52, "c": None}}}
    rep = realism.degradation_report(
        real, synthetic, hr, 2, cfg=realism.RealismConfig(inception=False), pairs=dsgan_jpeg
    )
    [note] = [n for n in rep["notes"] if "8x8 blocking" in n]
    assert "make-pairs JPEG-compressed 2 synthetic LR image(s), quality 48-52" in note
    assert "JPEG-compress" not in note.replace("JPEG-compressed", "") and "--jpeg" not in note
    b = {"real": 1.4}

    def one(pairs) -> str:
        [n] = text.advice(b, pairs)
        return n

    assert "already" in one({"method": "blind"}) and "--jpeg" not in one({"method": "blind"})
    off = one({"method": "dsgan", "jpeg": {"spec": {"mode": "off"}, "qualities": {"a": None}}})
    assert "cannot make blocks" in off and "ran with --jpeg off: use --jpeg auto" in off
    pdm = one({"method": "pdm", "jpeg": {"spec": {"mode": "auto"}, "qualities": {"a": None}}})
    assert "cannot make blocks" not in pdm and "pass --jpeg Q or QMIN:QMAX" in pdm  # pdm has its own grid
    assert "bicubic pairs have no JPEG stage" in one({"method": "bicubic"})
    assert "make-pairs --jpeg auto (its default)" in one(None)  # unknown provenance: the general advice
    assert text.advice({"real": 1.0}, None) == []  # no blocking, nothing to say


def test_folder_report_reads_the_pairs_json_beside_lr(tmp_path):
    from srpipe.io.imageio import write_png

    real, synthetic, hr = _sets(2)
    for name, imgs in (("real", real), ("pairs/lr", synthetic), ("pairs/hr", hr)):
        for i, im in enumerate(imgs):
            write_png(tmp_path / name / f"im{i}.png", im)
    (tmp_path / "pairs" / "pairs.json").write_text('{"method": "blind"}')
    rep = realism.folder_report(
        tmp_path / "real",
        tmp_path / "pairs" / "lr",
        tmp_path / "pairs" / "hr",
        cfg=realism.RealismConfig(inception=False),
    )
    assert any("the blind recipe JPEG-compresses every synthetic LR image" in n for n in rep["notes"])
