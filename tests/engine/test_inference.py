"""srpipe.engine.inference: precision choice, the fp32 rerun of non-finite batches, header-driven loading."""

from __future__ import annotations

import pytest
import torch

from srpipe.engine import ckpt, inference
from srpipe.errors import SrpipeError
from srpipe.io.tiling import tiled_apply

CPU, CUDA, MPS = torch.device("cpu"), torch.device("cuda"), torch.device("mps")


def test_precision_choice():
    assert inference.autocast_dtype("auto", CPU) is None
    assert inference.autocast_dtype("auto", CUDA) is torch.float16
    assert inference.autocast_dtype("auto", MPS) is None  # fp16 by default only where it is tested: CUDA
    assert inference.autocast_dtype("fp16", CUDA) is torch.float16
    assert inference.autocast_dtype("bf16", CPU) is torch.bfloat16
    assert inference.autocast_dtype("fp32", CUDA) is None


def test_precision_errors():
    with pytest.raises(SrpipeError, match=r"--precision fp16 needs a GPU; use bf16 or fp32 on the CPU"):
        inference.autocast_dtype("fp16", CPU)
    with pytest.raises(SrpipeError, match=r"--precision 'half': use auto, fp16, bf16 or fp32"):
        inference.autocast_dtype("half", CUDA)


class OverflowsInBf16(torch.nn.Module):
    """A 1x1 conv whose reduced-precision output is NaN wherever its input tile holds a value above
    0.99: a stand-in for fp16 overflow that hits some tiles and not others."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv2d(3, 3, 1)
        self.calls: list[torch.dtype] = []

    def forward(self, x):
        y = self.conv(x)
        self.calls.append(y.dtype)
        if y.dtype != torch.float32:
            hot = (x.amax(dim=(1, 2, 3)) > 0.99).view(-1, 1, 1, 1)
            y = torch.where(hot, torch.full_like(y, float("nan")), y)
        return y


def test_fallback_reruns_a_non_finite_batch_in_fp32():
    net = OverflowsInBf16().eval()
    img = torch.rand(3, 32, 32) * 0.9
    img[:, 20, 5] = 1.0  # in the tile at rows 16-31, columns 0-15 only
    fn, fallback = inference.autocast_fns(net, torch.bfloat16, CPU)
    with torch.no_grad():
        fp32 = net.conv(img[None])[0]
        bf16 = fn(img[None].clone() * 0.99)  # same net, no hot pixel: bf16 output differs from fp32
        assert bf16.dtype == torch.bfloat16
        assert (bf16.float() - net.conv(img[None] * 0.99)).abs().max() > 1e-4
        net.calls.clear()
        out = tiled_apply(img, fn, tile=16, pad=0, fallback=fallback)
    assert net.calls == [torch.bfloat16] * 4 + [torch.float32]  # 4 tiles, one rerun
    assert torch.isfinite(out).all()
    hot = (slice(None), slice(16, 32), slice(0, 16))
    assert torch.equal(out[hot], fp32[hot])  # the rerun tile is the fp32 result exactly
    cold = (slice(None), slice(0, 16), slice(0, 32))
    assert not torch.equal(out[cold], fp32[cold])  # the others kept their bf16 result
    assert torch.allclose(out[cold], fp32[cold], atol=0.05)  # bf16: 8 mantissa bits on values ~1


def test_fp32_fns_have_no_fallback_and_cast_the_input():
    net = OverflowsInBf16().eval()
    fn, fallback = inference.autocast_fns(net, None, CPU)
    assert fallback is None
    with torch.no_grad():
        assert fn(torch.rand(1, 3, 4, 4, dtype=torch.float64)).dtype == torch.float32


def test_load_network_by_header(tmp_path):
    conv = torch.nn.Conv2d(3, 4, 1)
    p = tmp_path / "c.safetensors"
    ckpt.save_weights(p, conv.state_dict(), arch="Conv2d", args={"in_channels": 3, "out_channels": 4, "kernel_size": 1})
    net, header = inference.load_network(p, {"Conv2d": torch.nn.Conv2d}, what="a conv")
    assert not net.training and header["arch"] == "Conv2d"
    assert torch.equal(net.weight, conv.weight)

    class Refused(SrpipeError):
        pass

    with pytest.raises(Refused, match=r"c.safetensors holds a 'Conv2d' network, not a linear layer"):
        inference.load_network(p, {"Linear": torch.nn.Linear}, what="a linear layer", error=Refused)
    bad = tmp_path / "bad.safetensors"
    ckpt.save_weights(
        bad, conv.state_dict(), arch="Conv2d", args={"in_channels": 3, "out_channels": 5, "kernel_size": 1}
    )
    with pytest.raises(Refused, match=r"bad.safetensors: its weights do not fit Conv2d\{.*out_channels': 5"):
        inference.load_network(bad, {"Conv2d": torch.nn.Conv2d}, what="a conv", error=Refused)
    odd = tmp_path / "odd.safetensors"
    ckpt.save_weights(odd, conv.state_dict(), arch="Conv2d", args={"channels": 3})
    with pytest.raises(Refused, match=r"odd.safetensors: its header's Conv2d arguments .* are invalid"):
        inference.load_network(odd, {"Conv2d": torch.nn.Conv2d}, what="a conv", error=Refused)


def test_network_class_default_for_a_header_without_arch():
    assert (
        inference.network_class({}, {"Conv2d": torch.nn.Conv2d}, where="f", what="a conv", default="Conv2d")
        is torch.nn.Conv2d
    )
    with pytest.raises(SrpipeError, match=r"f holds a 'unknown' network, not a conv"):
        inference.network_class({}, {"Conv2d": torch.nn.Conv2d}, where="f", what="a conv")
