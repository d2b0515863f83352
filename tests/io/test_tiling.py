"""tiling: exact mode equals the whole-image result when pad >= receptive radius; feathering hides seams."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from srpipe.io.tiling import tiled_apply


def conv_net(depth: int, *, seed: int = 0) -> nn.Module:
    """`depth` stacked 3x3 convs (zero padding): receptive radius = depth pixels."""
    torch.manual_seed(seed)
    layers: list[nn.Module] = []
    for i in range(depth):
        layers.append(nn.Conv2d(3 if i == 0 else 8, 3 if i == depth - 1 else 8, 3, padding=1))
        if i < depth - 1:
            layers.append(nn.LeakyReLU(0.2))
    return nn.Sequential(*layers).eval()


class ShuffleUp(nn.Module):
    """conv3x3 -> PixelShuffle(2) -> conv3x3: x2 output, receptive radius 1 + 1 = 2 input pixels."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(1)
        self.a = nn.Conv2d(3, 12, 3, padding=1)
        self.b = nn.Conv2d(3, 3, 3, padding=1)

    def forward(self, x):
        return self.b(F.pixel_shuffle(self.a(x), 2))


class NearestUp(nn.Module):
    """conv3x3 -> nearest x2 -> conv3x3 -> conv3x3: receptive radius 1 + 1 = 2 input pixels."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(2)
        self.a = nn.Conv2d(3, 8, 3, padding=1)
        self.b = nn.Conv2d(8, 8, 3, padding=1)
        self.c = nn.Conv2d(8, 3, 3, padding=1)

    def forward(self, x):
        return self.c(F.leaky_relu(self.b(F.interpolate(self.a(x), scale_factor=2, mode="nearest")), 0.2))


def smooth_image(h: int, w: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    base = torch.rand(1, 3, max(2, h // 6), max(2, w // 6), generator=g)
    return F.interpolate(base, size=(h, w), mode="bicubic", align_corners=False)[0].clamp(0, 1)


@torch.no_grad()
def whole(net, img):
    return net(img[None])[0]


@pytest.mark.parametrize("hw", [(37, 29), (16, 16), (9, 40), (5, 5)])
@pytest.mark.parametrize("batch", [1, 3])
def test_exact_mode_equals_whole_image(hw, batch):
    net, img = conv_net(3), smooth_image(*hw)
    out = tiled_apply(img, net, tile=8, pad=3, batch=batch)
    ref = whole(net, img)
    assert out.shape == ref.shape == (3, *hw) and out.dtype == torch.float32
    assert torch.allclose(out, ref, atol=1e-5)


@pytest.mark.parametrize("net_cls", [ShuffleUp, NearestUp])
def test_exact_mode_scale2_equals_whole_image(net_cls):
    net, img = net_cls().eval(), smooth_image(23, 31, seed=3)
    ref = whole(net, img)
    out = tiled_apply(img, net, scale=2, tile=7, pad=2, batch=4)
    assert out.shape == (3, 46, 62)
    assert torch.allclose(out, ref, atol=1e-5)
    # one pixel too little context: the seams show, so the comparison above can fail
    short = tiled_apply(img, net, scale=2, tile=7, pad=1, batch=4)
    assert (short - ref).abs().max() > 1e-3


def test_pad_below_radius_differs():
    net, img = conv_net(3), smooth_image(37, 29)
    ref = whole(net, img)
    for pad in (0, 1, 2):
        out = tiled_apply(img, net, tile=8, pad=pad, batch=2)
        assert (out - ref).abs().max() > 1e-3, pad


def test_single_tile_and_large_pad():
    net, img = conv_net(2), smooth_image(10, 12)
    ref = whole(net, img)
    assert torch.allclose(tiled_apply(img, net, tile=64, pad=0), ref, atol=1e-6)
    assert torch.allclose(tiled_apply(img, net, tile=3, pad=50, batch=5), ref, atol=1e-5)
    assert torch.allclose(tiled_apply(img, net, tile=1, pad=2, batch=64), ref, atol=1e-5)


def test_batches_hold_equal_shapes_and_respect_batch():
    net, img = conv_net(1), smooth_image(21, 19)
    calls = []

    def fn(x):
        calls.append(tuple(x.shape))
        return net(x)

    out = tiled_apply(img, fn, tile=8, pad=1, batch=2)
    assert torch.allclose(out, whole(net, img), atol=1e-5)
    assert all(c[0] <= 2 for c in calls)
    # 3 x 3 tiles = 9 tiles, in calls of at most 2 same-shaped tiles
    assert sum(c[0] for c in calls) == 9


def test_feathered_blend_hides_seams():
    """With pad < radius, feathering errs far less than naive tiling, worst of all along the seams."""
    net, img = conv_net(6, seed=0), smooth_image(48, 40, seed=1)
    ref = whole(net, img)
    naive = tiled_apply(img, net, tile=16, pad=0)
    blend = tiled_apply(img, net, tile=16, pad=3, blend=True, batch=3)
    assert blend.shape == ref.shape
    rms = lambda d: d.pow(2).mean().sqrt().item()  # noqa: E731
    assert rms(blend - ref) < 0.3 * rms(naive - ref)
    # the seam rows/cols of naive tiling (16, 32) carry its biggest jumps; blending smooths them
    seams = torch.zeros(48, 40, dtype=torch.bool)
    for s in (16, 32):
        seams[s - 2 : s + 2, :] = True
        seams[:, s - 2 : s + 2] = True
    assert (blend - ref).abs()[:, seams].max() < 0.5 * (naive - ref).abs()[:, seams].max()
    # and blending is exact where no tile border falls: an image that fits one window
    small = smooth_image(20, 20)
    assert torch.allclose(tiled_apply(small, net, tile=16, pad=2, blend=True), whole(net, small), atol=1e-5)


def test_blend_scale2_shape_and_constant_passthrough():
    img = torch.full((3, 19, 26), 0.25)
    up = lambda x: F.interpolate(x, scale_factor=2, mode="nearest")  # noqa: E731
    out = tiled_apply(img, up, scale=2, tile=6, pad=2, blend=True)
    assert out.shape == (3, 38, 52)
    assert torch.allclose(out, torch.full_like(out, 0.25), atol=1e-6)  # weights are normalised everywhere


def test_channel_change_and_dtype():
    net = nn.Conv2d(3, 1, 3, padding=1).eval()
    img = smooth_image(12, 13)
    out = tiled_apply(img, net, tile=5, pad=1)
    assert out.shape == (1, 12, 13)
    assert torch.allclose(out, whole(net, img), atol=1e-5)
    seen = []
    out64 = tiled_apply(img, lambda x: seen.append(x.dtype) or net.double()(x), tile=5, pad=1, dtype=torch.float64)
    assert set(seen) == {torch.float64} and out64.dtype == torch.float32


def test_bad_arguments_raise():
    img = torch.rand(3, 8, 8)
    ident = lambda x: x  # noqa: E731
    with pytest.raises(ValueError, match=r"\(C, H, W\)"):
        tiled_apply(img[None], ident)
    for kw in ({"tile": 0}, {"pad": -1}, {"batch": 0}, {"scale": 0}):
        with pytest.raises(ValueError):
            tiled_apply(img, ident, **kw)
    with pytest.raises(ValueError, match="scale=2"):  # fn does not upscale though scale says so
        tiled_apply(img, ident, scale=2, tile=4)
