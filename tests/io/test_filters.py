"""filters: low-pass / high-pass against values worked out by hand on small arrays."""

from __future__ import annotations

import math

import pytest
import torch

from srpipe.io.filters import gaussian_kernel1d, high_pass, low_pass

# x[r, c] = 4r + c + 1
X4 = torch.arange(1, 17, dtype=torch.float64).reshape(1, 1, 4, 4)

# 3x3 box means, by hand (sums of the window / count):
BOX3_NONE = [[6, 7], [10, 11]]
# zero padding counted: window sums / 9
BOX3_ZEROS = [
    [14 / 9, 24 / 9, 30 / 9, 22 / 9],
    [33 / 9, 54 / 9, 63 / 9, 45 / 9],
    [57 / 9, 90 / 9, 99 / 9, 69 / 9],
    [46 / 9, 72 / 9, 78 / 9, 54 / 9],
]
# padding excluded: window sums / number of real pixels (4 at corners, 6 on edges, 9 inside)
BOX3_EXCLUDE = [
    [14 / 4, 24 / 6, 30 / 6, 22 / 4],
    [33 / 6, 54 / 9, 63 / 9, 45 / 6],
    [57 / 6, 90 / 9, 99 / 9, 69 / 6],
    [46 / 4, 72 / 6, 78 / 6, 54 / 4],
]
# edge pixels repeated: e.g. top-left window = [1 1 2; 1 1 2; 5 5 6] -> 24 / 9
BOX3_REPLICATE = [
    [24 / 9, 30 / 9, 39 / 9, 45 / 9],
    [48 / 9, 54 / 9, 63 / 9, 69 / 9],
    [84 / 9, 90 / 9, 99 / 9, 105 / 9],
    [108 / 9, 114 / 9, 123 / 9, 129 / 9],
]


@pytest.mark.parametrize(
    "padding,expected",
    [("none", BOX3_NONE), ("zeros", BOX3_ZEROS), ("exclude", BOX3_EXCLUDE), ("replicate", BOX3_REPLICATE)],
)
def test_box3_by_hand(padding, expected):
    y = low_pass(X4, 3, padding=padding)
    assert torch.allclose(y[0, 0], torch.tensor(expected, dtype=torch.float64), atol=1e-12), y[0, 0]


def test_box5_none_and_batch_channels():
    """5x5 box without padding on a 5x6 array: two outputs, each a window mean; batch/channels independent."""
    x = torch.tensor(
        [
            [0, 0, 0, 0, 0, 9],
            [0, 5, 0, 0, 0, 9],
            [0, 0, 0, 0, 0, 9],
            [0, 0, 0, 0, 0, 9],
            [0, 0, 0, 0, 10, 9],
        ],
        dtype=torch.float64,
    )
    xb = torch.stack([x, 2 * x, -x]).reshape(1, 3, 5, 6).repeat(2, 1, 1, 1)
    y = low_pass(xb, 5, padding="none")
    assert y.shape == (2, 3, 1, 2)
    assert torch.allclose(y[0, 0, 0], torch.tensor([15 / 25, (5 + 10 + 45) / 25], dtype=torch.float64))
    assert torch.allclose(y[1, 1], 2 * y[0, 0]) and torch.allclose(y[1, 2], -y[0, 0])


def test_exclude_keeps_constants_everywhere_but_zeros_darkens_borders():
    x = torch.full((1, 2, 6, 5), 0.8)
    assert torch.allclose(low_pass(x, 5, padding="exclude"), x)
    assert torch.allclose(low_pass(x, 5, padding="replicate"), x)
    z = low_pass(x, 5, padding="zeros")
    assert torch.isclose(z[0, 0, 0, 0], torch.tensor(0.8 * 9 / 25))
    assert torch.isclose(z[0, 0, 2, 2], torch.tensor(0.8))


def test_gaussian_kernel_by_hand():
    g = gaussian_kernel1d(3, 1.0, dtype=torch.float64)
    e = math.exp(-0.5)
    assert torch.allclose(g, torch.tensor([e, 1, e], dtype=torch.float64) / (1 + 2 * e))
    for k, s in [(5, 5 / 6), (7, 2.0), (9, 0.5)]:
        gk = gaussian_kernel1d(k, s, dtype=torch.float64)
        assert gk.shape == (k,) and math.isclose(gk.sum().item(), 1.0, abs_tol=1e-12)
        assert torch.allclose(gk, gk.flip(0)) and gk.argmax().item() == k // 2


@pytest.mark.parametrize("padding", ["zeros", "exclude", "replicate"])
def test_gaussian_of_delta_is_the_kernel(padding):
    """A delta far from the borders spreads into exactly exp(-(dy^2+dx^2)/2s^2), normalised."""
    k, s = 5, 5 / 6  # default sigma for k=5
    x = torch.zeros(1, 1, 9, 9, dtype=torch.float64)
    x[0, 0, 4, 4] = 1.0
    y = low_pass(x, k, kind="gaussian", padding=padding)
    r = torch.arange(k, dtype=torch.float64) - k // 2
    ref2 = torch.exp(-(r[:, None] ** 2 + r[None, :] ** 2) / (2 * s**2))
    ref2 = ref2 / ref2.sum()
    assert math.isclose(y.sum().item(), 1.0, abs_tol=1e-12)
    assert torch.allclose(y[0, 0, 2:7, 2:7], ref2, atol=1e-12)
    assert y[0, 0, :2].abs().max() == 0 and y[0, 0, :, 7:].abs().max() == 0


def test_gaussian_exclude_renormalises_at_border():
    """Delta in a corner with exclude: weight = g(0)^2 / (mass of the kernel quarter inside the image)."""
    k = 3
    x = torch.zeros(1, 1, 4, 4, dtype=torch.float64)
    x[0, 0, 0, 0] = 1.0
    g = gaussian_kernel1d(k, k / 6, dtype=torch.float64)
    y = low_pass(x, k, kind="gaussian", padding="exclude")
    inside = g[1:].sum() ** 2  # the 2x2 part of the 3x3 kernel that lies on real pixels
    assert math.isclose(y[0, 0, 0, 0].item(), (g[1] * g[1] / inside).item(), rel_tol=1e-12)
    assert low_pass(x, k, kind="gaussian", padding="none").shape == (1, 1, 2, 2)
    ones = torch.ones(1, 1, 4, 4)
    assert torch.allclose(low_pass(ones, k, kind="gaussian", padding="exclude"), ones)


def test_high_pass_by_hand():
    x = X4 / 16
    y = high_pass(x, 3, padding="exclude")
    expected = 0.5 + 0.5 * (X4[0, 0] - torch.tensor(BOX3_EXCLUDE, dtype=torch.float64)) / 16
    assert torch.allclose(y[0, 0], expected, atol=1e-12)
    # e.g. the top-left: 0.5 + 0.5 * (1 - 3.5) / 16
    assert math.isclose(y[0, 0, 0, 0].item(), 0.5 - 2.5 / 32, abs_tol=1e-12)


@pytest.mark.parametrize("kind", ["box", "gaussian"])
@pytest.mark.parametrize("padding", ["exclude", "replicate"])
def test_high_pass_of_constant_is_half(kind, padding):
    for c in (0.0, 0.25, 0.5, 1.0):  # dyadic constants: the box average is exact
        x = torch.full((2, 3, 7, 6), c)
        h = high_pass(x, 5, kind=kind, padding=padding)
        if kind == "box":
            assert torch.equal(h, torch.full_like(h, 0.5)), (c, padding)
        else:
            assert (h - 0.5).abs().max() < 1e-7
    for c in (0.1, 0.3, 1 / 3, 0.999):  # any constant: 0.5 up to float32 rounding
        h = high_pass(torch.full((1, 3, 8, 8), c), 7, kind=kind, padding=padding)
        assert (h - 0.5).abs().max() < 3e-7


def test_high_pass_stays_in_unit_range():
    x = torch.rand(2, 3, 16, 16)
    for padding in ("exclude", "replicate", "zeros"):
        h = high_pass(x, 5, padding=padding)
        assert h.shape == x.shape and h.min() >= 0 and h.max() <= 1


@pytest.mark.parametrize("k", [0, 2, 4, -3])
def test_even_or_nonpositive_kernel_raises(k):
    with pytest.raises(ValueError, match="odd"):
        low_pass(X4, k)
    with pytest.raises(ValueError, match="odd"):
        high_pass(X4, k)


def test_bad_padding_and_kind_raise():
    with pytest.raises(ValueError, match="size-keeping"):
        high_pass(X4, 3, padding="none")
    with pytest.raises(ValueError, match="padding"):
        low_pass(X4, 3, padding="reflect")
    with pytest.raises(ValueError, match="padding"):
        low_pass(X4, 3, kind="gaussian", padding="zero")
    with pytest.raises(ValueError, match="kind"):
        low_pass(X4, 3, kind="median")
