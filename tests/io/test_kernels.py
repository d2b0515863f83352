"""srpipe.io.kernels: kernel construction, the strided blur and kernel measurements."""

import math

import pytest
import torch

from srpipe.io.kernels import (
    bicubic_kernel,
    blur_down,
    box_kernel,
    convolve_kernels,
    gaussian_kernel,
    kernel_error,
    kernel_picture,
    kernel_size,
    kernel_stats,
)
from srpipe.io.resize import bicubic_down


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_bicubic_kernel_reproduces_bicubic_down_away_from_borders(scale):
    # Same separable weights, so the difference is float32 summation order (a few 1e-7);
    # the borders differ by design (reflect padding here, renormalised taps in torch).
    g = torch.Generator().manual_seed(scale)
    hr = torch.rand(2, 3, 12 * scale, 12 * scale, generator=g) * 0.6 + 0.2
    ours = blur_down(hr, bicubic_kernel(scale), scale)
    ref = bicubic_down(hr, scale)
    assert ours.shape == ref.shape
    assert torch.allclose(ours[..., 3:-3, 3:-3], ref[..., 3:-3, 3:-3], atol=2e-6)


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_box_kernel_is_area_downscaling(scale):
    hr = torch.rand(1, 3, 8 * scale, 8 * scale, generator=torch.Generator().manual_seed(0))
    ours = blur_down(hr, box_kernel(kernel_size(scale), scale), scale)
    area = torch.nn.functional.avg_pool2d(hr, scale)
    assert torch.allclose(ours, area, atol=1e-6)


def test_per_image_kernels_match_one_at_a_time():
    hr = torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    ks = torch.stack([gaussian_kernel(20, s) for s in (0.8, 1.6, 3.0)])
    batched = blur_down(hr, ks, 4)
    for i in range(3):
        assert torch.allclose(batched[i : i + 1], blur_down(hr[i : i + 1], ks[i], 4), atol=1e-6)
    with pytest.raises(ValueError, match="kernels for a batch"):
        blur_down(hr, ks[:2], 4)


def test_blur_down_refuses_off_grid_kernels_and_sizes():
    hr = torch.rand(1, 3, 32, 32)
    with pytest.raises(ValueError, match="cannot be centred"):
        blur_down(hr, gaussian_kernel(21, 1.0), 4)
    with pytest.raises(ValueError, match="mod-crop"):
        blur_down(torch.rand(1, 3, 30, 32), gaussian_kernel(20, 1.0), 4)


def test_gaussian_stats_recover_its_parameters():
    # A Gaussian well inside its window: second moments are its sigmas up to truncation (< 1e-3 here).
    k = gaussian_kernel(41, 3.0, 1.5, math.radians(30))
    assert float(k.sum()) == pytest.approx(1.0, abs=1e-6)
    st = kernel_stats(k)
    assert st["sigma_major"] == pytest.approx(3.0, rel=2e-3)
    assert st["sigma_minor"] == pytest.approx(1.5, rel=2e-3)
    assert st["anisotropy"] == pytest.approx(2.0, rel=3e-3)
    assert st["angle_deg"] == pytest.approx(30.0, abs=0.1)
    assert st["centre"] == [pytest.approx(0, abs=1e-6), pytest.approx(0, abs=1e-6)]
    assert st["negative_mass"] == 0


def test_stats_see_a_shift_and_negative_taps():
    k = torch.zeros(20, 20)
    k[10, 12] = 1.0  # geometric centre is 9.5: offset (0.5, 2.5)
    assert kernel_stats(k)["centre"] == [pytest.approx(0.5), pytest.approx(2.5)]
    assert kernel_stats(bicubic_kernel(4))["negative_mass"] > 0.05


def test_gaussian_convolved_with_box_adds_variances():
    # Variances add under convolution: box of side 4 has variance (4^2 - 1)/12 per axis.
    k = convolve_kernels(gaussian_kernel(33, 1.5), box_kernel(4, 4), 36)
    assert kernel_stats(k)["sigma_major"] == pytest.approx(math.sqrt(1.5**2 + 15 / 12), rel=2e-3)
    assert float(k.sum()) == pytest.approx(1.0, abs=1e-5)


def test_kernel_error_ignores_shift_and_orders_distances():
    g = gaussian_kernel(20, 1.6)
    shifted = torch.roll(g, 1, dims=1)  # an integer shift: recentring undoes it exactly
    assert kernel_error(shifted, g) == pytest.approx(0.0, abs=1e-6)
    near, far = gaussian_kernel(20, 1.8), gaussian_kernel(20, 3.0)
    assert 0 < kernel_error(near, g) < kernel_error(far, g)
    assert kernel_error(near, g) == pytest.approx(kernel_error(g, near), rel=1e-6)


def test_kernel_picture_shows_negative_taps_in_red():
    pic = kernel_picture([gaussian_kernel(20, 1.5), bicubic_kernel(4)], zoom=4, gap=2)
    assert pic.shape == (3, 80, 4 * 20 * 2 + 2)
    assert float(pic.max()) == pytest.approx(1.0) and float(pic.min()) >= 0
    bic = pic[:, :, 82:]
    red_only = (bic[0] > 0) & (bic[1] == 0)
    assert red_only.any()  # bicubic's negative lobes
    assert not ((pic[0, :, :80] > 0) & (pic[1, :, :80] == 0)).any()  # a Gaussian has none
