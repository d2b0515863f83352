"""DSGAN networks (srpipe.degrade.archs): shapes and ranges, the spectral-norm discriminator, the exact
receptive radius; the generator with a noise input and a residual output: identity start, reproducible tiling."""

from __future__ import annotations

import pytest
import torch

from srpipe.degrade.archs import DSGANDiscriminator, DSGANGenerator
from srpipe.degrade.pairs import degrade_image, noise_seed


def test_residual_generator_starts_at_the_identity_and_uses_its_noise():
    torch.manual_seed(0)
    G = DSGANGenerator(features=8, res_blocks=1, noise_channels=2, residual=True)
    x = torch.rand(2, 3, 12, 16)
    assert torch.equal(G(x), x)  # zero-initialised tail: the clean LR, whatever the noise
    torch.nn.init.normal_(G.tail.weight, std=0.1)
    n1, n2 = torch.randn(2, 2, 12, 16), torch.randn(2, 2, 12, 16)
    assert torch.equal(G(x, n1), G(x, n1))
    assert not torch.allclose(G(x, n1), G(x, n2))  # the noise reaches the output
    assert G(x).shape == x.shape


def test_noise_generator_tiles_reproduce_the_whole_image():
    torch.manual_seed(1)
    G = DSGANGenerator(features=4, res_blocks=2, noise_channels=1, residual=True).eval()
    torch.nn.init.normal_(G.tail.weight, std=0.2)
    hr = torch.rand(3, 96, 80)
    whole = degrade_image(G, hr, 4, tile=1024, noise_seed=7)
    tiled = degrade_image(G, hr, 4, tile=8, noise_seed=7)
    # Same noise draw and a pad of the receptive radius: identical up to float32 summation order.
    assert torch.allclose(whole, tiled, atol=1e-6)
    other = degrade_image(G, hr, 4, tile=8, noise_seed=8)
    assert (other - whole).abs().max() > 1e-3  # another seed, another draw


def test_noise_seed_depends_on_the_name_only():
    assert noise_seed("a") == noise_seed("a") != noise_seed("b")
    assert 0 <= noise_seed("a") < 2**63


def test_generator_and_discriminator_shapes_and_ranges():
    G = DSGANGenerator(features=8, res_blocks=2)
    D = DSGANDiscriminator(features=8)
    x = torch.rand(2, 3, 20, 24)
    y = G(x)
    assert y.shape == x.shape and y.min() >= 0 and y.max() <= 1
    assert D(x).shape == (2, 1, 20, 24)
    assert sum(isinstance(m, torch.nn.PReLU) for m in G.modules()) == 1 + 2


def test_spectral_norm_discriminator_bounds_every_conv_and_drops_batch_norm():
    D = DSGANDiscriminator(features=8, spectral_norm=True)
    convs = [m for m in D.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 4 and all(torch.nn.utils.parametrize.is_parametrized(c, "weight") for c in convs)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in D.modules())
    x = torch.rand(2, 3, 16, 16)
    for _ in range(20):  # power iterations converge in training mode
        D(x)
    D.eval()
    for c in convs:  # largest singular value of the reshaped weight: 1 (power iteration, loose)
        w = c.weight.flatten(1)
        assert float(torch.linalg.matrix_norm(w.detach(), ord=2)) == pytest.approx(1.0, abs=0.05)
    plain = DSGANDiscriminator(features=8)
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in plain.modules()) == 2
    assert not any(torch.nn.utils.parametrize.is_parametrized(m) for m in plain.modules())


def test_generator_receptive_radius_is_exact():
    G = DSGANGenerator(features=4, res_blocks=2).eval()
    r = G.receptive_radius
    x = torch.rand(1, 3, 41, 41)
    x2 = x.clone()
    x2[..., 20, 20] += 1.0
    diff = (G(x2) - G(x)).abs().sum(1)[0]
    ys, xs = torch.nonzero(diff > 0, as_tuple=True)
    assert int(ys.max() - 20) == r and int(20 - xs.min()) == r
