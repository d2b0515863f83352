"""resize: antialiased bicubic equals MATLAB `imresize` away from the borders (independent numpy reference)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from srpipe.io.resize import bicubic_down, bicubic_up, mod_crop


def _keys_cubic(x: np.ndarray) -> np.ndarray:
    """Keys (1981) cubic convolution kernel with a = -0.5, as MATLAB's `cubic`."""
    ax = np.abs(x)
    return np.where(
        ax <= 1,
        1.5 * ax**3 - 2.5 * ax**2 + 1,
        np.where(ax < 2, -0.5 * ax**3 + 2.5 * ax**2 - 4 * ax + 2, 0.0),
    )


def _matlab_weights(n_in: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Weight matrix (n_out, n_in) of MATLAB imresize(..., 1/k, 'bicubic') with antialiasing.

    MATLAB maps output pixel i (0-based) to input position u = (i + 0.5) * k - 0.5 and, when shrinking,
    widens the kernel by k: h(d) = cubic(d / k) / k over 4k input pixels, weights normalised to 1.
    Returns the matrix and a mask of output rows whose kernel lies fully inside the image (there MATLAB's
    mirrored border and torch's renormalised border cannot differ).
    """
    n_out = n_in // k
    W = np.zeros((n_out, n_in))
    inside = np.zeros(n_out, bool)
    for i in range(n_out):
        u = (i + 0.5) * k - 0.5
        j = np.arange(int(np.floor(u - 2 * k)), int(np.ceil(u + 2 * k)) + 1)
        w = _keys_cubic((u - j) / k) / k
        inside[i] = j[w != 0].min() >= 0 and j[w != 0].max() <= n_in - 1
        w = w / w.sum()
        for jj, ww in zip(j, w):
            W[i, min(max(jj, 0), n_in - 1)] += ww
    return W, inside


@pytest.mark.parametrize("k", [2, 3, 4])
def test_bicubic_down_matches_matlab_interior(k):
    rng = np.random.default_rng(k)
    h, w = 12 * k, 10 * k
    x = rng.random((2, 3, h, w))
    Wh, in_h = _matlab_weights(h, k)
    Ww, in_w = _matlab_weights(w, k)
    ref = np.clip(np.einsum("oh,bchw,pw->bcop", Wh, x, Ww), 0, 1)
    y = bicubic_down(torch.from_numpy(x).float(), k).numpy()
    assert y.shape == (2, 3, h // k, w // k)
    interior = np.ix_(in_h, in_w)
    assert in_h.sum() >= 6 and in_w.sum() >= 4  # the comparison covers a real area
    assert np.abs(y[..., interior[0], interior[1]] - ref[..., interior[0], interior[1]]).max() < 1e-5


def test_reference_is_not_plain_bicubic():
    """The test above could not pass with a non-antialiased (narrow-kernel) bicubic: it would differ."""
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.random((1, 1, 32, 32))).float()
    plain = torch.nn.functional.interpolate(x, size=(8, 8), mode="bicubic", align_corners=False)
    assert (plain.clamp(0, 1) - bicubic_down(x, 4)).abs().max() > 1e-2


def test_bicubic_down_3d_and_constant():
    x = torch.full((3, 12, 9), 0.3)
    y = bicubic_down(x, 3)
    assert y.shape == (3, 4, 3)
    assert torch.allclose(y, torch.full_like(y, 0.3), atol=1e-6)  # borders included


def test_bicubic_down_clamps():
    x = torch.zeros(1, 1, 16, 16)
    x[..., ::2, ::2] = 1.0  # a checkerboard-ish pattern that overshoots
    x[..., 8:, :] = 0
    y = bicubic_down(x, 2)
    assert y.min() >= 0 and y.max() <= 1


@pytest.mark.parametrize("shape,scale", [((3, 10, 12), 4), ((1, 3, 12, 10), 4), ((3, 9, 9), 2)])
def test_bicubic_down_rejects_non_divisible(shape, scale):
    with pytest.raises(ValueError, match="multiple of scale"):
        bicubic_down(torch.rand(shape), scale)


def test_mod_crop():
    x = torch.arange(2 * 3 * 10 * 11, dtype=torch.float32).reshape(2, 3, 10, 11)
    y = mod_crop(x, 4)
    assert y.shape == (2, 3, 8, 8)
    assert torch.equal(y, x[..., :8, :8])
    assert mod_crop(x[0], 5).shape == (3, 10, 10)
    assert torch.equal(mod_crop(x, 1), x)


def test_bicubic_up_shape_and_range():
    x = torch.rand(2, 3, 5, 7)
    y = bicubic_up(x, 3)
    assert y.shape == (2, 3, 15, 21)
    assert y.min() >= 0 and y.max() <= 1
