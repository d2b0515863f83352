"""DSGAN generator with a noise input and a residual output: shapes, identity start, reproducible tiling."""

from __future__ import annotations

import torch

from srpipe.degrade.archs import DSGANGenerator
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
