"""ESRGAN networks (Wang et al., "ESRGAN: Enhanced Super-Resolution GANs", ECCVW 2018).

Pure modules: no I/O, no losses. Keyword-only arguments, recorded in weights file headers so a file
alone rebuilds its network (`RRDBNet(**header["args"])`, see `interop.load_generator`).

`RRDBNet` uses BasicSR's parameter names (`conv_first`, `body.N.rdbK.convM`, `conv_body`,
`conv_up1`, `conv_up2`, `conv_hr`, `conv_last`) and BasicSR's x2/x1 scheme (pixel-unshuffle of the
input, then the x4 body), so BasicSR / Real-ESRGAN weights load with `strict=True` and our weights
load in spandrel. x3 is srpipe's own (one nearest-x3 + conv step); no other tool reads it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

# Residual scaling (ESRGAN paper, Sec. 3.1): "we scale down the residuals by multiplying a constant
# between 0 and 1 before adding them to the main path to prevent instability"; BasicSR uses 0.2.
RESIDUAL_SCALE = 0.2


class ResidualDenseBlock(nn.Module):
    """Five 3x3 convs with dense connections; output = conv5(...) * 0.2 + input.

    Args:
        num_feat: channels in and out.
        num_grow_ch: channels each of conv1..conv4 adds to the dense concatenation.
    """

    def __init__(self, *, num_feat: int = 64, num_grow_ch: int = 32):
        super().__init__()
        self.conv1 = nn.Conv2d(num_feat, num_grow_ch, 3, 1, 1)
        self.conv2 = nn.Conv2d(num_feat + num_grow_ch, num_grow_ch, 3, 1, 1)
        self.conv3 = nn.Conv2d(num_feat + 2 * num_grow_ch, num_grow_ch, 3, 1, 1)
        self.conv4 = nn.Conv2d(num_feat + 3 * num_grow_ch, num_grow_ch, 3, 1, 1)
        self.conv5 = nn.Conv2d(num_feat + 4 * num_grow_ch, num_feat, 3, 1, 1)
        self.lrelu = nn.LeakyReLU(negative_slope=0.2, inplace=True)
        # BasicSR's `default_init_weights(..., 0.1)`: Kaiming init scaled by 0.1, which the ESRGAN
        # paper (Sec. 3.3, "smaller initialization") found makes very deep RRDB stacks train.
        for conv in (self.conv1, self.conv2, self.conv3, self.conv4, self.conv5):
            nn.init.kaiming_normal_(conv.weight)
            conv.weight.data.mul_(0.1)
            nn.init.zeros_(conv.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1 = self.lrelu(self.conv1(x))
        x2 = self.lrelu(self.conv2(torch.cat((x, x1), 1)))
        x3 = self.lrelu(self.conv3(torch.cat((x, x1, x2), 1)))
        x4 = self.lrelu(self.conv4(torch.cat((x, x1, x2, x3), 1)))
        x5 = self.conv5(torch.cat((x, x1, x2, x3, x4), 1))
        return x5 * RESIDUAL_SCALE + x


class RRDB(nn.Module):
    """Residual in Residual Dense Block: three dense blocks, residual scaled by 0.2."""

    def __init__(self, *, num_feat: int = 64, num_grow_ch: int = 32):
        super().__init__()
        self.rdb1 = ResidualDenseBlock(num_feat=num_feat, num_grow_ch=num_grow_ch)
        self.rdb2 = ResidualDenseBlock(num_feat=num_feat, num_grow_ch=num_grow_ch)
        self.rdb3 = ResidualDenseBlock(num_feat=num_feat, num_grow_ch=num_grow_ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.rdb3(self.rdb2(self.rdb1(x))) * RESIDUAL_SCALE + x


def unshuffle_factor(scale: int) -> int:
    """RRDBNet's pixel-unshuffle of its input at `scale`: x1 by 4, x2 by 2, else none (H, W must divide by it)."""
    return {1: 4, 2: 2}.get(scale, 1)


class RRDBNet(nn.Module):
    """The ESRGAN generator (no batch norm).

    Args:
        scale: 1, 2, 3 or 4. x4: two (nearest x2 + conv) steps. x2 / x1: the input is
            pixel-unshuffled by 2 / 4 first and the x4 body follows (BasicSR / Real-ESRGAN), so H and W
            must be multiples of 2 / 4. x3: one (nearest x3 + conv) step, srpipe only.
        num_in_ch: image channels in (before pixel-unshuffle).
        num_out_ch: image channels out.
        num_feat: width of the body (paper: 64).
        num_block: RRDB blocks (paper: 23).
        num_grow_ch: dense-block growth channels (paper: 32; spandrel assumes 32, keep it).
    Shapes:
        x: (B, num_in_ch, H, W) in [0, 1] -> (B, num_out_ch, H*scale, W*scale), roughly [0, 1]
        (not clamped: the training losses see the raw output, as in BasicSR).
    """

    def __init__(
        self,
        *,
        scale: int = 4,
        num_in_ch: int = 3,
        num_out_ch: int = 3,
        num_feat: int = 64,
        num_block: int = 23,
        num_grow_ch: int = 32,
    ):
        super().__init__()
        if scale not in (1, 2, 3, 4):
            raise ValueError(f"RRDBNet scale must be 1, 2, 3 or 4, got {scale}")
        self.scale = scale
        self.unshuffle = unshuffle_factor(scale)
        self.conv_first = nn.Conv2d(num_in_ch * self.unshuffle**2, num_feat, 3, 1, 1)
        self.body = nn.Sequential(*[RRDB(num_feat=num_feat, num_grow_ch=num_grow_ch) for _ in range(num_block)])
        self.conv_body = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_up1 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        if scale != 3:
            self.conv_up2 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_hr = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_last = nn.Conv2d(num_feat, num_out_ch, 3, 1, 1)
        self.lrelu = nn.LeakyReLU(negative_slope=0.2, inplace=True)
        # Convolutions at input resolution: conv_first, 15 per RRDB, conv_body; the trailing convs
        # (at 2x and 4x resolution) add under 2 input pixels. Times the unshuffle factor for x2/x1.
        self.receptive_radius = self.unshuffle * (2 + 15 * num_block + 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feat = F.pixel_unshuffle(x, self.unshuffle) if self.unshuffle > 1 else x
        feat = self.conv_first(feat)
        feat = feat + self.conv_body(self.body(feat))
        if self.scale == 3:
            feat = self.lrelu(self.conv_up1(F.interpolate(feat, scale_factor=3, mode="nearest")))
        else:
            feat = self.lrelu(self.conv_up1(F.interpolate(feat, scale_factor=2, mode="nearest")))
            feat = self.lrelu(self.conv_up2(F.interpolate(feat, scale_factor=2, mode="nearest")))
        return self.conv_last(self.lrelu(self.conv_hr(feat)))


def _bn(c: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(c, affine=True)


class VGGStyleDiscriminator(nn.Module):
    """ESRGAN's discriminator for 128x128 patches (BasicSR `VGGStyleDiscriminator`, same names).

    Five stages of (3x3 conv, 4x4 stride-2 conv), each with BN + LReLU(0.2), widths f, 2f, 4f, 8f, 8f;
    then Linear(8f*4*4 -> 100) + LReLU + Linear(100 -> 1).

    Args:
        num_in_ch: image channels.
        num_feat: width of the first stage (paper: 64).
        input_size: 128 (ESRGAN) or 256; the linear head fixes it.
    Shapes:
        x: (B, num_in_ch, input_size, input_size) -> (B, 1) logits.
    """

    def __init__(self, *, num_in_ch: int = 3, num_feat: int = 64, input_size: int = 128):
        super().__init__()
        if input_size not in (128, 256):
            raise ValueError(f"VGGStyleDiscriminator input_size must be 128 or 256, got {input_size}")
        self.input_size = input_size
        f = num_feat
        self.conv0_0 = nn.Conv2d(num_in_ch, f, 3, 1, 1, bias=True)
        self.conv0_1 = nn.Conv2d(f, f, 4, 2, 1, bias=False)
        self.bn0_1 = _bn(f)
        self.conv1_0 = nn.Conv2d(f, f * 2, 3, 1, 1, bias=False)
        self.bn1_0 = _bn(f * 2)
        self.conv1_1 = nn.Conv2d(f * 2, f * 2, 4, 2, 1, bias=False)
        self.bn1_1 = _bn(f * 2)
        self.conv2_0 = nn.Conv2d(f * 2, f * 4, 3, 1, 1, bias=False)
        self.bn2_0 = _bn(f * 4)
        self.conv2_1 = nn.Conv2d(f * 4, f * 4, 4, 2, 1, bias=False)
        self.bn2_1 = _bn(f * 4)
        self.conv3_0 = nn.Conv2d(f * 4, f * 8, 3, 1, 1, bias=False)
        self.bn3_0 = _bn(f * 8)
        self.conv3_1 = nn.Conv2d(f * 8, f * 8, 4, 2, 1, bias=False)
        self.bn3_1 = _bn(f * 8)
        self.conv4_0 = nn.Conv2d(f * 8, f * 8, 3, 1, 1, bias=False)
        self.bn4_0 = _bn(f * 8)
        self.conv4_1 = nn.Conv2d(f * 8, f * 8, 4, 2, 1, bias=False)
        self.bn4_1 = _bn(f * 8)
        if input_size == 256:  # BasicSR adds a sixth stage for 256x256 inputs
            self.conv5_0 = nn.Conv2d(f * 8, f * 8, 3, 1, 1, bias=False)
            self.bn5_0 = _bn(f * 8)
            self.conv5_1 = nn.Conv2d(f * 8, f * 8, 4, 2, 1, bias=False)
            self.bn5_1 = _bn(f * 8)
        self.linear1 = nn.Linear(f * 8 * 4 * 4, 100)
        self.linear2 = nn.Linear(100, 1)
        self.lrelu = nn.LeakyReLU(negative_slope=0.2, inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-2:] != (self.input_size, self.input_size):
            raise ValueError(
                f"VGGStyleDiscriminator needs {self.input_size}x{self.input_size} inputs, got "
                f"{x.shape[-1]}x{x.shape[-2]}; use the patch discriminator for other sizes"
            )
        feat = self.lrelu(self.conv0_0(x))
        feat = self.lrelu(self.bn0_1(self.conv0_1(feat)))
        stages = 6 if self.input_size == 256 else 5
        for i in range(1, stages):
            feat = self.lrelu(getattr(self, f"bn{i}_0")(getattr(self, f"conv{i}_0")(feat)))
            feat = self.lrelu(getattr(self, f"bn{i}_1")(getattr(self, f"conv{i}_1")(feat)))
        feat = self.lrelu(self.linear1(feat.flatten(1)))
        return self.linear2(feat)


class PatchDiscriminator(nn.Module):
    """Fully convolutional PatchGAN (pix2pix `NLayerDiscriminator`; Real-SR uses n_layers=3).

    4x4 conv stride 2 + LReLU, then (n_layers - 1) x [4x4 conv stride 2 + BN + LReLU], then
    4x4 conv stride 1 + BN + LReLU and a 4x4 conv to one channel. Widths f, 2f, 4f, 8f (capped at 8f).

    Args:
        num_in_ch: image channels.
        num_feat: width of the first layer.
        n_layers: stride-2 layers; each output logit sees a 70x70 window for n_layers=3.
    Shapes:
        x: (B, num_in_ch, H, W), H, W >= 2**(n_layers + 2) -> (B, 1, h, w) logits, one per patch.
    """

    def __init__(self, *, num_in_ch: int = 3, num_feat: int = 64, n_layers: int = 3):
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(num_in_ch, num_feat, 4, 2, 1), nn.LeakyReLU(0.2, inplace=True)]
        width = num_feat
        for n in range(1, n_layers + 1):
            nxt = num_feat * min(2**n, 8)
            stride = 2 if n < n_layers else 1
            layers += [nn.Conv2d(width, nxt, 4, stride, 1, bias=False), _bn(nxt), nn.LeakyReLU(0.2, inplace=True)]
            width = nxt
        layers.append(nn.Conv2d(width, 1, 4, 1, 1))
        self.net = nn.Sequential(*layers)
        self.min_size = 2 ** (n_layers + 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


DISCRIMINATORS = {"vgg": VGGStyleDiscriminator, "patch": PatchDiscriminator}
