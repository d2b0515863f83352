"""Loss definitions against hand-computed values."""

from __future__ import annotations

import math

import pytest
import torch

from srpipe.engine import weights
from srpipe.upscale.losses import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    FrequencySeparation,
    PerceptualLoss,
    pixel_loss,
    ragan_d_loss,
    ragan_g_loss,
)


def _bce(logit: float, target: int) -> float:
    p = 1 / (1 + math.exp(-logit))
    return -math.log(p) if target == 1 else -math.log(1 - p)


def test_pixel_loss_is_mean_absolute_error():
    a = torch.tensor([[0.0, 0.5], [1.0, 0.25]])
    b = torch.tensor([[0.5, 0.5], [0.0, 0.0]])
    assert pixel_loss(a, b).item() == pytest.approx((0.5 + 0 + 1 + 0.25) / 4)


REAL = [1.0, -0.5, 2.0]
FAKE = [0.2, 0.7, -1.1]


def test_ragan_losses_match_hand_computation():
    mr, mf = sum(REAL) / 3, sum(FAKE) / 3
    g = 0.5 * (sum(_bce(r - mf, 0) for r in REAL) / 3 + sum(_bce(f - mr, 1) for f in FAKE) / 3)
    d = 0.5 * (sum(_bce(r - mf, 1) for r in REAL) / 3 + sum(_bce(f - mr, 0) for f in FAKE) / 3)
    real, fake = torch.tensor(REAL).view(3, 1), torch.tensor(FAKE).view(3, 1)
    assert ragan_g_loss(real, fake).item() == pytest.approx(g, rel=1e-6)
    assert ragan_d_loss(real, fake).item() == pytest.approx(d, rel=1e-6)


def test_ragan_average_runs_over_batch_and_positions():
    # patch D: (B, 1, h, w) logits; the relativistic mean is over every element
    torch.manual_seed(0)
    real, fake = torch.randn(2, 1, 3, 3), torch.randn(2, 1, 3, 3)
    rv, fv = real.flatten().tolist(), fake.flatten().tolist()
    mr, mf = sum(rv) / len(rv), sum(fv) / len(fv)
    d = 0.5 * (sum(_bce(r - mf, 1) for r in rv) / len(rv) + sum(_bce(f - mr, 0) for f in fv) / len(fv))
    assert ragan_d_loss(real, fake).item() == pytest.approx(d, rel=1e-5)


def test_ragan_gradients_push_in_the_right_direction():
    real = torch.tensor([0.5, 0.1])
    fake = torch.tensor([0.0, -0.3], requires_grad=True)
    ragan_g_loss(real, fake).backward()
    assert (fake.grad < 0).all()  # G wants higher fake logits
    fake_d = fake.detach().clone().requires_grad_(True)
    ragan_d_loss(real, fake_d).backward()
    assert (fake_d.grad > 0).all()  # D wants lower fake logits


@pytest.mark.slow
def test_perceptual_loss_uses_vgg19_conv5_4_preactivation(torch_home):
    feats = weights.vgg19_features()  # the stand-in VGG19 from the torch_home fixture
    loss = PerceptualLoss(feats)
    assert isinstance(feats[-1], torch.nn.Conv2d) and feats[-1].out_channels == 512  # conv5_4, no ReLU after
    x = torch.rand(2, 3, 32, 32)
    assert loss(x, x.clone()).item() == 0.0
    y = (x + 0.1 * torch.randn_like(x)).clamp(0, 1)
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    with torch.no_grad():
        expected = (feats((y - mean) / std) - feats((x - mean) / std)).abs().mean()
        assert feats((x - mean) / std).min() < 0  # pre-activation: a ReLU output would be >= 0
    assert expected.item() > 0
    assert loss(y, x).item() == pytest.approx(expected.item(), rel=1e-5)
    # gradients reach sr only; the backbone stays frozen and in eval mode
    sr = y.clone().requires_grad_(True)
    loss(sr, x).backward()
    assert sr.grad is not None and torch.isfinite(sr.grad).all() and sr.grad.abs().sum() > 0
    assert all(p.grad is None for p in loss.features.parameters())
    loss.train()
    assert not loss.features.training


def test_perceptual_loss_missing_weights_is_an_error(empty_torch_home):
    with pytest.raises(weights.MissingWeightsError, match="vgg19"):
        PerceptualLoss(weights.vgg19_features())


def test_frequency_separation_box_matches_esrgan_fs():
    fs = FrequencySeparation("box", 9)
    x = torch.rand(1, 3, 20, 20)
    pool = torch.nn.AvgPool2d(9, stride=1, padding=4, count_include_pad=True)  # ESRGAN-FS FilterLow
    assert torch.allclose(fs.low(x), pool(x), atol=1e-6)
    assert torch.allclose(fs.high(x), 0.5 + 0.5 * (x - pool(x)), atol=1e-6)
    const = torch.full((1, 3, 20, 20), 0.3)
    assert torch.allclose(fs.high(const)[..., 4:-4, 4:-4], torch.full((1, 3, 12, 12), 0.5))


def test_frequency_separation_gaussian_sigma():
    fs = FrequencySeparation("gaussian", 7)
    assert fs.sigma == pytest.approx(1.0)  # (k-1)/6, ESRGAN-FS
    x = torch.zeros(1, 1, 15, 15)
    x[..., 7, 7] = 1.0
    lp = fs.low(x)[0, 0]
    g = torch.exp(-(torch.arange(-3, 4, dtype=torch.float32) ** 2) / 2)
    g = g / g.sum()
    assert torch.allclose(lp[4:11, 4:11], g[:, None] * g[None, :], atol=1e-6)
