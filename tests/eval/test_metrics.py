"""PSNR/SSIM conventions against scikit-image, colour PSNR, LPIPS wrapper, folder evaluation."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from tests.helpers import make_folder
from srpipe.eval import metrics
from srpipe.errors import SrpipeError
from srpipe.engine.weights import MissingWeightsError


def _pair(b=3, h=48, w=40, noise=0.08, seed=0):
    g = torch.Generator().manual_seed(seed)
    base = torch.nn.functional.interpolate(
        torch.rand(b, 3, h // 4, w // 4, generator=g), size=(h, w), mode="bicubic", align_corners=False
    ).clamp(0, 1)
    other = (base + noise * torch.randn(base.shape, generator=g)).clamp(0, 1)
    # 8-bit values, as images read from files are
    return (base * 255).round() / 255, (other * 255).round() / 255


def _y255(x: torch.Tensor) -> np.ndarray:
    """Y by the BT.601 studio-range formula written out in numpy, on the 0-255 scale (H, W)."""
    r, g, b = x.double().numpy() * 255
    return 16.0 + (65.481 * r + 128.553 * g + 24.966 * b) / 255.0


SK = dict(gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255)


def test_rgb_to_y_is_studio_range():
    black, white = torch.zeros(1, 3, 2, 2), torch.ones(1, 3, 2, 2)
    assert torch.allclose(metrics.rgb_to_y(black) * 255, torch.full((1, 1, 2, 2), 16.0))
    assert torch.allclose(metrics.rgb_to_y(white) * 255, torch.full((1, 1, 2, 2), 235.0), atol=1e-4)
    assert metrics.rgb_to_y(torch.rand(3, 5, 6)).shape == (1, 5, 6)


@pytest.mark.parametrize("crop", [0, 4])
def test_psnr_ssim_on_y_match_scikit_image(crop):
    a, b = _pair()
    p = metrics.psnr(a, b, crop_border=crop)
    s = metrics.ssim(a, b, crop_border=crop)
    assert p.shape == s.shape == (3,) and p.dtype == torch.float64
    for i in range(3):
        ya, yb = _y255(a[i]), _y255(b[i])
        if crop:
            ya, yb = ya[crop:-crop, crop:-crop], yb[crop:-crop, crop:-crop]
        assert p[i].item() == pytest.approx(peak_signal_noise_ratio(ya, yb, data_range=255), abs=1e-9)
        assert s[i].item() == pytest.approx(structural_similarity(ya, yb, **SK), abs=1e-9)
    # a batch gives the same numbers as one image at a time
    assert metrics.ssim(a[1], b[1], crop_border=crop).item() == pytest.approx(s[1].item(), abs=1e-12)


def test_psnr_ssim_on_rgb_match_scikit_image():
    a, b = _pair(b=1)
    ra, rb = (a[0].permute(1, 2, 0).double().numpy() * 255), (b[0].permute(1, 2, 0).double().numpy() * 255)
    assert metrics.psnr(a, b, y_only=False)[0].item() == pytest.approx(peak_signal_noise_ratio(ra, rb, data_range=255))
    sk = structural_similarity(ra, rb, channel_axis=2, **SK)
    assert metrics.ssim(a, b, y_only=False)[0].item() == pytest.approx(sk, abs=1e-9)
    # Y and RGB really differ (the flag is not ignored)
    assert metrics.psnr(a, b, y_only=False)[0] != metrics.psnr(a, b)[0]


def test_psnr_known_values_and_crop():
    a = torch.full((1, 3, 20, 20), 0.5)
    b = a + 10 / 255
    assert metrics.psnr(a, b, y_only=False).item() == pytest.approx(20 * math.log10(255 / 10), abs=1e-4)
    assert math.isinf(metrics.psnr(a, a).item())
    assert metrics.ssim(a, a).item() == pytest.approx(1.0)
    # the border crop removes errors that live only in the border
    c = a.clone()
    c[..., :3, :] = 0.0
    assert math.isinf(metrics.psnr(a, c, crop_border=3).item())
    assert metrics.psnr(a, c, crop_border=2).item() < 30


def test_color_psnr_sees_only_the_means():
    a, _ = _pair(b=1)
    flipped = a.flip(-1)  # same colours, different places
    assert math.isinf(metrics.color_psnr(a, flipped).item())
    shifted = a.clone()
    shifted[:, 0] += 6 / 255  # red mean shifted by 6 levels (no clipping: values stay below 1)
    expected = 10 * math.log10(255**2 / (36 / 3))
    assert metrics.color_psnr(a, shifted.clamp(max=1)).item() == pytest.approx(expected, abs=0.3)


def test_metric_input_errors():
    a = torch.rand(1, 3, 16, 16)
    with pytest.raises(ValueError, match="differ in shape"):
        metrics.psnr(a, torch.rand(1, 3, 16, 17))
    with pytest.raises(ValueError, match="at least 11x11"):
        metrics.ssim(a, a, crop_border=3)
    with pytest.raises(ValueError, match="leaves nothing"):
        metrics.psnr(a, a, crop_border=8)
    with pytest.raises(ValueError, match="3, H, W"):
        metrics.psnr(torch.rand(1, 1, 16, 16), torch.rand(1, 1, 16, 16))


def test_lpips_wrapper(torch_home):
    lp = metrics.LPIPS()
    a, b = _pair(b=2, h=64, w=64)
    d = lp(a, b)
    assert d.shape == (2,) and (d > 0).all()
    assert lp(a, a).abs().max().item() < 1e-6
    # inputs are mapped to [-1, 1] before the network (LPIPS's convention)
    with torch.no_grad():
        direct = lp.model(a * 2 - 1, b * 2 - 1).flatten().double()
        unmapped = lp.model(a, b).flatten().double()
    assert torch.allclose(d, direct, atol=1e-6)
    assert not torch.allclose(d, unmapped, atol=1e-4)


def test_evaluate_folders_lpips_size_limit(tmp_path, torch_home):
    big = make_folder(tmp_path / "big", 1, (40, 40), seed=1)
    make_folder(big, 1, (24, 24), seed=2, prefix="small")
    res = metrics.evaluate_folders(big, big, metrics.EvalConfig(scale=2, crop_border=0))
    lp = {r["name"]: r["lpips"] for r in res["images"]}
    assert lp["img_00"] == pytest.approx(0.0, abs=1e-6) and lp["small_00"] is None
    assert any("at least 32x32" in n and "small_00.png" in n for n in res["notes"])


def test_lpips_without_weights(empty_torch_home):
    with pytest.raises(MissingWeightsError, match="alexnet-owt-7be5be79.pth"):
        metrics.LPIPS()


# ---------------------------------------------------------------- folders


def test_evaluate_folders_values_and_modcrop(tmp_path):
    gt = make_folder(tmp_path / "gt", 3, (50, 42), seed=3)
    sr = tmp_path / "sr"
    sr.mkdir()
    rng = np.random.default_rng(0)
    for p in sorted(gt.iterdir()):
        a = cv2.imread(str(p))[:40, :48]  # SR of a mod-4-cropped LR: GT is 2 px larger
        noisy = np.clip(a + rng.normal(0, 4, a.shape), 0, 255).astype(np.uint8)
        cv2.imwrite(str(sr / p.name), noisy)
    res = metrics.evaluate_folders(sr, gt, metrics.EvalConfig(scale=4, lpips=False))
    assert [r["name"] for r in res["images"]] == ["img_00", "img_01", "img_02"]
    assert res["config"]["crop_border"] == 4 and res["images"][0]["lpips"] is None
    # the numbers are metrics.psnr/ssim on the mod-cropped GT
    from srpipe.io.imageio import read_image

    s, g = read_image(sr / "img_01.png")[0], read_image(gt / "img_01.png")[0][:, :40, :48]
    row = res["images"][1]
    assert row["psnr_y"] == pytest.approx(metrics.psnr(s, g, crop_border=4).item())
    assert row["ssim_rgb"] == pytest.approx(metrics.ssim(s, g, crop_border=4, y_only=False).item())
    assert 25 < res["summary"]["psnr_y"] < 45
    assert res["summary"]["psnr_y"] == pytest.approx(np.mean([r["psnr_y"] for r in res["images"]]))
    custom = metrics.evaluate_folders(sr, gt, metrics.EvalConfig(scale=4, crop_border=0, lpips=False))
    assert custom["config"]["crop_border"] == 0 and custom["images"][1]["psnr_y"] != row["psnr_y"]


def test_evaluate_folders_lpips_note_when_weights_missing(tmp_path, empty_torch_home):
    gt = make_folder(tmp_path / "gt", 2, (32, 32), seed=3)
    res = metrics.evaluate_folders(gt, gt, metrics.EvalConfig(scale=2))
    assert res["summary"]["lpips"] is None and math.isinf(res["summary"]["psnr_y"])
    assert any("LPIPS skipped" in n and "alexnet" in n for n in res["notes"])


def test_match_files_errors(tmp_path):
    a = make_folder(tmp_path / "a", 3, (32, 32), seed=1)
    b = make_folder(tmp_path / "b", 2, (32, 32), seed=1)
    make_folder(tmp_path / "b", 1, (32, 32), seed=1, prefix="other")
    with pytest.raises(SrpipeError, match=r"1 in .*a without a GT.*img_02\.png.*1 in .*b without an SR.*other_00\.png"):
        metrics.match_files(a, b)
    (tmp_path / "empty").mkdir()
    with pytest.raises(SrpipeError, match="no images"):
        metrics.match_files(tmp_path / "empty", b)


def test_size_mismatch_is_an_error(tmp_path):
    gt = make_folder(tmp_path / "gt", 1, (64, 64), seed=1)
    lr = make_folder(tmp_path / "lr", 1, (16, 16), seed=1)
    with pytest.raises(SrpipeError, match=r"size mismatch: .*16x16.*64x64.*1/4 of GT"):
        metrics.evaluate_folders(lr, gt, metrics.EvalConfig(scale=4, lpips=False))
    odd = make_folder(tmp_path / "odd", 1, (60, 64), seed=1)
    with pytest.raises(SrpipeError, match="size mismatch"):
        metrics.evaluate_folders(odd, gt, metrics.EvalConfig(scale=2, lpips=False))
