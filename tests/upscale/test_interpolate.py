"""Network interpolation: values at alpha 0, 0.8, 1, mismatch errors, sweeps."""

from __future__ import annotations

import pytest
import torch

from srpipe.engine import ckpt
from srpipe.upscale import interop
from srpipe.upscale.archs import RRDBNet
from srpipe.upscale.interpolate import InterpolationError, interpolate, interpolate_files, parse_sweep

ARGS = {"scale": 4, "num_in_ch": 3, "num_out_ch": 3, "num_feat": 8, "num_block": 1, "num_grow_ch": 4}


def sd(seed: int, **kw) -> dict:
    torch.manual_seed(seed)
    return RRDBNet(**{**ARGS, **kw}).state_dict()


def test_values_at_alpha_0_08_1():
    p, g = sd(0), sd(1)
    for k in p:
        assert torch.equal(interpolate(p, g, 0.0)[k], p[k])
        assert torch.equal(interpolate(p, g, 1.0)[k], g[k])
    mid = interpolate(p, g, 0.8)
    k = "conv_first.weight"
    assert torch.allclose(mid[k], 0.2 * p[k] + 0.8 * g[k])  # alpha weights the GAN model (ESRGAN net_interp.py)
    assert torch.allclose(interpolate(p, g, 0.5)[k], (p[k] + g[k]) / 2)


@pytest.mark.parametrize("alpha", [1.5, -0.1])
def test_alpha_outside_0_1_is_an_error(alpha):
    with pytest.raises(InterpolationError, match=r"alpha must be in \[0, 1\]"):
        interpolate(sd(0), sd(1), alpha)


def test_mismatched_networks_name_what_differs():
    with pytest.raises(InterpolationError, match=r"only in the PSNR model: body\.1\."):
        interpolate(sd(0, num_block=2), sd(1), 0.5)
    with pytest.raises(InterpolationError, match=r"conv_first.weight \(16, 3, 3, 3\) vs \(8, 3, 3, 3\)"):
        interpolate(
            sd(0, num_feat=16, num_grow_ch=4) | {},
            {**sd(1, num_feat=16), "conv_first.weight": torch.zeros(8, 3, 3, 3)},
            0.5,
        )


def test_files_and_arch_check(tmp_path):
    interop.save_generator(tmp_path / "psnr.safetensors", sd(0), ARGS)
    interop.save_generator(tmp_path / "gan.safetensors", sd(1), ARGS)
    [out] = interpolate_files(
        tmp_path / "psnr.safetensors", tmp_path / "gan.safetensors", [0.8], tmp_path / "i.safetensors"
    )
    w, header = ckpt.load_weights(out)
    assert header["arch"] == "RRDBNet" and header["args"] == ARGS and float(header["alpha"]) == 0.8
    k = "conv_first.weight"
    assert torch.allclose(w[k], 0.2 * sd(0)[k] + 0.8 * sd(1)[k])
    # a x2 model has another conv_first: different networks are refused with the difference named
    interop.save_generator(tmp_path / "x2.safetensors", sd(2, scale=2), {**ARGS, "scale": 2})
    with pytest.raises(InterpolationError, match="different networks"):
        interpolate_files(
            tmp_path / "psnr.safetensors", tmp_path / "x2.safetensors", [0.5], tmp_path / "bad.safetensors"
        )


def test_sweep_writes_one_file_per_alpha(tmp_path):
    interop.save_generator(tmp_path / "psnr.safetensors", sd(0), ARGS)
    interop.save_generator(tmp_path / "gan.safetensors", sd(1), ARGS)
    alphas = parse_sweep("0:1:0.25")
    assert alphas == [0.0, 0.25, 0.5, 0.75, 1.0]
    files = interpolate_files(
        tmp_path / "psnr.safetensors", tmp_path / "gan.safetensors", alphas, tmp_path / "sweep", sweep=True
    )
    assert [f.name for f in files] == [f"alpha_{a:.2f}.safetensors" for a in alphas]
    assert len(parse_sweep("0:1:0.1")) == 11
    with pytest.raises(InterpolationError, match="START:STOP:STEP"):
        parse_sweep("0-1")
    with pytest.raises(InterpolationError, match=r"alpha must be in \[0, 1\]"):
        parse_sweep("0:2:0.5")
