"""The differentiable JPEG used in DSGAN's loop against real libjpeg (Pillow)."""

import io

import numpy as np
import pytest
import torch
from PIL import Image

from srpipe.degrade.diffjpeg import diff_jpeg, quant_tables


def _photo(h=70, w=90) -> np.ndarray:
    """A smooth gradient with texture and an edge: content JPEG quantises visibly, deterministic."""
    y, x = np.mgrid[0:h, 0:w]
    rng = np.random.default_rng(0)
    base = np.stack([x * 2.0, y * 3.0, (x + y) * 1.2], -1) + 30
    base[:, w // 2 :] += 60
    return np.clip(base + rng.normal(0, 6, base.shape), 0, 255).astype(np.uint8)


def _libjpeg(rgb: np.ndarray, q: int) -> np.ndarray:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="JPEG", quality=q, subsampling=2)
    return np.asarray(Image.open(buf).convert("RGB")).astype(np.float64)


@pytest.mark.parametrize("q", [10, 30, 75, 95])
def test_decoded_pixels_follow_libjpeg(q):
    rgb = _photo()
    x = torch.from_numpy(rgb).permute(2, 0, 1).float()[None] / 255
    out = diff_jpeg(x, torch.tensor([q]))[0].permute(1, 2, 0).numpy() * 255
    ref = _libjpeg(rgb, q)
    ours, theirs = np.abs(out - ref).mean(), np.abs(rgb - ref).mean()
    # libjpeg's integer DCT and 8-bit intermediates differ from this float codec by about one level;
    # the compression itself moves pixels by several levels at these qualities.
    assert ours < 1.5
    assert ours < 0.5 * theirs
    assert out.shape == rgb.shape  # 70x90 is not a whole number of 16-px MCUs: padded, then cropped


def test_tables_follow_ijg_scaling():
    luma, chroma = quant_tables(torch.tensor([50, 100, 1, 75]))
    assert luma[0, 0, 0] == 16 and chroma[0, 0, 0] == 17  # quality 50 is Annex K as printed
    assert torch.all(luma[1] == 1)  # quality 100: scale 0, every entry clipped to 1
    assert torch.all(luma[2] == 255)  # quality 1: scale 5000, every entry clipped to 255
    assert luma[3, 0, 0] == 8  # (16 * 50 + 50) // 100 = 8 at quality 75


def test_gradient_passes_rounding():
    x = torch.rand(2, 3, 16, 16, requires_grad=True)
    diff_jpeg(x, torch.tensor([30, 90])).sum().backward()
    assert x.grad is not None and float(x.grad.abs().mean()) > 0.5  # straight-through: about 1 per pixel


def test_saturated_pixels_are_clamped_but_keep_their_gradient():
    # An overshooting generator must be pulled back by its losses: a hard clamp would give it no
    # gradient at all (the tiny DSGAN on q30 targets stayed saturated after one bad step).
    x = torch.full((1, 3, 16, 16), 1.5, requires_grad=True)
    out = diff_jpeg(x, torch.tensor([30]))
    assert torch.equal(out, torch.ones_like(out))  # a flat white block decodes to white
    (out - 0.5).pow(2).mean().backward()
    # straight through the rounding and the clamp, the codec is linear and maps a flat field to itself:
    # d/dx of mean((out - 0.5)^2) = 2 * (out - 0.5) / n everywhere, up to float32 sums of ~10 linear maps
    n = x.numel()
    torch.testing.assert_close(x.grad, torch.full_like(x, 2 * 0.5 / n), rtol=1e-5, atol=0)
