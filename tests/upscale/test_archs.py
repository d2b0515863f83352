"""RRDBNet and discriminators: shapes, BasicSR parameter names, validation."""

from __future__ import annotations

import pytest
import torch

from srpipe.upscale.archs import PatchDiscriminator, RRDBNet, VGGStyleDiscriminator


def small(scale: int, **kw) -> RRDBNet:
    return RRDBNet(scale=scale, num_feat=8, num_block=1, num_grow_ch=4, **kw)


@pytest.mark.parametrize("scale", [1, 2, 3, 4])
def test_rrdbnet_output_shape(scale):
    net = small(scale).eval()
    x = torch.rand(2, 3, 12, 16)  # multiples of 4, as x1 (pixel-unshuffle by 4) needs
    with torch.no_grad():
        y = net(x)
    assert y.shape == (2, 3, 12 * scale, 16 * scale)
    assert torch.isfinite(y).all()


def test_rrdbnet_in_out_channels():
    net = RRDBNet(scale=2, num_in_ch=1, num_out_ch=1, num_feat=8, num_block=1, num_grow_ch=4)
    assert net.conv_first.weight.shape[1] == 4  # 1 channel pixel-unshuffled by 2
    assert net(torch.rand(1, 1, 8, 8)).shape == (1, 1, 16, 16)


def _basicsr_names(num_block: int, *, x3: bool = False) -> set[str]:
    """BasicSR `RRDBNet` state-dict keys (basicsr/archs/rrdbnet_arch.py), written out by hand."""
    names = {"conv_first", "conv_body", "conv_up1", "conv_hr", "conv_last"}
    if not x3:
        names.add("conv_up2")
    names |= {f"body.{b}.rdb{k}.conv{m}" for b in range(num_block) for k in (1, 2, 3) for m in range(1, 6)}
    return {f"{n}.{t}" for n in names for t in ("weight", "bias")}


@pytest.mark.parametrize("scale", [1, 2, 4])
def test_rrdbnet_parameter_names_match_basicsr(scale):
    net = RRDBNet(scale=scale, num_feat=8, num_block=2, num_grow_ch=4)
    assert set(net.state_dict()) == _basicsr_names(2)
    # BasicSR's x2/x1 read 4x/16x the channels in conv_first (pixel-unshuffle)
    assert net.conv_first.weight.shape == (8, 3 * {1: 16, 2: 4, 4: 1}[scale], 3, 3)
    assert net.body[1].rdb3.conv5.weight.shape == (8, 8 + 4 * 4, 3, 3)


def test_rrdbnet_x3_has_one_up_step():
    net = small(3)
    assert set(net.state_dict()) == _basicsr_names(1, x3=True)


def test_rrdbnet_rejects_bad_scale():
    with pytest.raises(ValueError, match="scale must be 1, 2, 3 or 4"):
        RRDBNet(scale=8)


def test_rrdbnet_dense_block_init_is_scaled():
    # ESRGAN Sec. 3.3 / BasicSR default_init_weights(..., 0.1): dense-block convs start at 0.1 x Kaiming
    torch.manual_seed(0)
    net = RRDBNet(scale=4, num_feat=64, num_block=1, num_grow_ch=32)
    w = net.body[0].rdb1.conv5.weight
    kaiming_std = (2.0 / w[0].numel()) ** 0.5
    assert w.std().item() == pytest.approx(0.1 * kaiming_std, rel=0.05)
    assert net.body[0].rdb1.conv5.bias.abs().sum() == 0
    assert net.conv_first.weight.std() > 2 * 0.1 * (2.0 / net.conv_first.weight[0].numel()) ** 0.5  # torch default


def test_receptive_radius_bounds_influence():
    # a pixel change outside the radius must not change the output at the centre
    net = small(4).eval()
    r = net.receptive_radius
    n = 2 * r + 8
    x = torch.rand(1, 3, n, n)
    x2 = x.clone()
    x2[..., 0, 0] += 1.0
    with torch.no_grad():
        c = n // 2 * 4
        a = net(x)[..., c, c]
        b = net(x2)[..., c, c]
    assert torch.equal(a, b)
    x3 = x.clone()
    x3[..., n // 2 - 1, n // 2 - 1] += 1.0
    with torch.no_grad():
        assert not torch.equal(a, net(x3)[..., c, c])


@pytest.mark.parametrize("size", [128, 256])
def test_vgg_discriminator_shape(size):
    d = VGGStyleDiscriminator(num_feat=4, input_size=size)
    assert d(torch.rand(3, 3, size, size)).shape == (3, 1)


def test_vgg_discriminator_names_match_basicsr():
    d = VGGStyleDiscriminator(num_feat=4)
    keys = set(d.state_dict())
    assert {
        "conv0_0.weight",
        "conv0_0.bias",
        "conv0_1.weight",
        "bn0_1.running_mean",
        "conv4_1.weight",
        "bn4_1.weight",
        "linear1.weight",
        "linear2.bias",
    } <= keys
    assert "conv0_1.bias" not in keys  # BasicSR: bias=False before batch norm
    assert d.linear1.weight.shape == (100, 4 * 8 * 4 * 4)


def test_vgg_discriminator_rejects_other_sizes():
    d = VGGStyleDiscriminator(num_feat=4)
    with pytest.raises(ValueError, match="128x128"):
        d(torch.rand(1, 3, 64, 64))
    with pytest.raises(ValueError, match="128 or 256"):
        VGGStyleDiscriminator(input_size=96)


@pytest.mark.parametrize("size,out", [(32, 2), (64, 6), (96, 10)])
def test_patch_discriminator_is_fully_convolutional(size, out):
    d = PatchDiscriminator(num_feat=8, n_layers=3)
    assert d(torch.rand(2, 3, size, size)).shape == (2, 1, out, out)
    assert d(torch.rand(1, 3, size, 2 * size)).shape[-2:] == (out, (2 * size) // 8 - 2)
