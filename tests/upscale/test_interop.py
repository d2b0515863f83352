"""Weights interoperability: spandrel reads what we write, we read every ESRGAN key layout."""

from __future__ import annotations

import re

import pytest
import torch

from srpipe.engine import ckpt
from srpipe.upscale import interop
from srpipe.upscale.archs import RRDBNet

spandrel = pytest.importorskip("spandrel")


def net(scale: int, **kw) -> RRDBNet:
    # spandrel assumes 32 growth channels, so interop tests keep num_grow_ch=32
    args = {"scale": scale, "num_feat": 16, "num_block": 2, "num_grow_ch": 32, **kw}
    return RRDBNet(**args).eval()


def args_of(n: RRDBNet, scale: int) -> dict:
    return {"scale": scale, "num_in_ch": 3, "num_out_ch": 3, "num_feat": 16, "num_block": 2, "num_grow_ch": 32}


def same_output(a: torch.nn.Module, b: torch.nn.Module, size: int = 12) -> float:
    x = torch.rand(1, 3, size, size)
    with torch.no_grad():
        return (a(x) - b(x)).abs().max().item()


@pytest.mark.parametrize("scale", [4, 2, 1])
def test_spandrel_loads_our_safetensors(tmp_path, scale):
    g = net(scale)
    path = interop.save_generator(tmp_path / "g.safetensors", g.state_dict(), args_of(g, scale))
    desc = spandrel.ModelLoader().load_from_file(str(path))
    assert desc.architecture.id == "ESRGAN"
    assert desc.scale == scale
    assert same_output(g, desc.model) < 1e-5


@pytest.mark.parametrize("scale", [4, 2])
def test_spandrel_loads_exported_pth_and_we_read_it_back(tmp_path, scale):
    g = net(scale)
    path = interop.export_pth(tmp_path / "g.pth", g.state_dict(), args_of(g, scale))
    raw = torch.load(path, weights_only=True)
    assert set(raw) == {"params", "params_ema"}  # BasicSR's layout
    assert set(raw["params_ema"]) == set(g.state_dict())
    desc = spandrel.ModelLoader().load_from_file(str(path))
    assert desc.scale == scale
    assert same_output(g, desc.model) < 1e-5
    back, args, _ = interop.load_generator(path)
    assert args == args_of(g, scale)
    assert same_output(g, back) == 0.0


def _old_layout(sd: dict) -> dict:
    """BasicSR -> old BasicSR / ESRGAN-FS names (BasicSR scripts/model_conversion/convert_models.py)."""
    ren = {"conv_body": "trunk_conv", "conv_up1": "upconv1", "conv_up2": "upconv2", "conv_hr": "HRconv"}
    out = {}
    for k, v in sd.items():
        m = re.match(r"body\.(\d+)\.rdb(\d)\.conv(\d)\.(weight|bias)", k)
        if m:
            out[f"RRDB_trunk.{m[1]}.RDB{m[2]}.conv{m[3]}.{m[4]}"] = v
        else:
            layer, kind = k.rsplit(".", 1)
            out[f"{ren.get(layer, layer)}.{kind}"] = v
    return out


def _original_layout(sd: dict, nb: int) -> dict:
    """BasicSR -> the original ESRGAN repo's `model.N` names (x4: upconvs at 3 and 6)."""
    pos = {
        "conv_first": "model.0",
        "conv_body": f"model.1.sub.{nb}",
        "conv_up1": "model.3",
        "conv_up2": "model.6",
        "conv_hr": "model.8",
        "conv_last": "model.10",
    }
    out = {}
    for k, v in sd.items():
        m = re.match(r"body\.(\d+)\.rdb(\d)\.conv(\d)\.(weight|bias)", k)
        if m:
            out[f"model.1.sub.{m[1]}.RDB{m[2]}.conv{m[3]}.0.{m[4]}"] = v
        else:
            layer, kind = k.rsplit(".", 1)
            out[f"{pos[layer]}.{kind}"] = v
    return out


@pytest.mark.parametrize("layout", ["basicsr", "old", "original", "wrapped", "module"])
def test_every_key_layout_loads_to_identical_outputs(tmp_path, layout):
    g = net(4)
    sd = g.state_dict()
    obj = {
        "basicsr": {"params_ema": sd},
        "old": _old_layout(sd),
        "original": _original_layout(sd, 2),
        "wrapped": {"state_dict": {"params": sd}},
        "module": {f"module.{k}": v for k, v in sd.items()},
    }[layout]
    path = tmp_path / "w.pth"
    torch.save(obj, path)
    back, args, _ = interop.load_generator(path)
    assert args == args_of(g, 4)  # width, blocks, growth and scale read from the shapes
    assert same_output(g, back) == 0.0
    if layout in ("old", "original"):  # spandrel agrees on these files too
        assert same_output(g, spandrel.ModelLoader().load_from_file(str(path)).model) < 1e-5


def test_pixel_unshuffle_variants_are_detected(tmp_path):
    for scale in (1, 2):
        g = net(scale)
        torch.save(_old_layout(g.state_dict()), tmp_path / f"x{scale}.pth")
        back, args, _ = interop.load_generator(tmp_path / f"x{scale}.pth")
        assert args["scale"] == scale and args["num_in_ch"] == 3
        assert same_output(g, back) == 0.0


def test_pth_is_loaded_with_weights_only(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("code ran",))

    path = tmp_path / "evil.pth"
    torch.save({"params": {"conv_first.weight": torch.zeros(1)}, "x": Evil()}, path)
    with pytest.raises(interop.ModelFormatError, match="weights_only=True"):
        interop.load_generator(path)


def test_not_an_esrgan_is_a_clear_error(tmp_path):
    torch.save({"features.0.weight": torch.zeros(1)}, tmp_path / "vgg.pth")
    with pytest.raises(interop.ModelFormatError, match="not an ESRGAN/RRDBNet"):
        interop.load_generator(tmp_path / "vgg.pth")
    with pytest.raises(interop.ModelFormatError, match="does not exist"):
        interop.load_generator(tmp_path / "missing.pth")


def test_x3_is_srpipe_only(tmp_path):
    g = RRDBNet(scale=3, num_feat=16, num_block=1, num_grow_ch=32).eval()
    args = {"scale": 3, "num_in_ch": 3, "num_out_ch": 3, "num_feat": 16, "num_block": 1, "num_grow_ch": 32}
    path = interop.save_generator(tmp_path / "x3.safetensors", g.state_dict(), args)
    back, back_args, _ = interop.load_generator(path)  # we read it
    assert back_args == args and same_output(g, back) == 0.0
    # spandrel would build a x2 network from these tensors; the key prefix makes it refuse instead
    with pytest.raises(spandrel.UnsupportedModelError):
        spandrel.ModelLoader().load_from_file(str(path))
    with pytest.raises(interop.ModelFormatError, match="x3 RRDBNet, srpipe's own layout"):
        interop.export_pth(tmp_path / "x3.pth", g.state_dict(), args)
    with pytest.raises(interop.ModelFormatError, match="x3"):
        interop.export(path, tmp_path / "x3_for_others.safetensors")


def test_export_converts_old_layout_to_basicsr_safetensors(tmp_path):
    g = net(4)
    torch.save(_old_layout(g.state_dict()), tmp_path / "old.pth")
    out = interop.export(tmp_path / "old.pth", tmp_path / "new.safetensors")
    sd, header = ckpt.load_weights(out)
    assert header["arch"] == "RRDBNet" and header["args"] == args_of(g, 4)
    assert set(sd) == set(g.state_dict())
    assert same_output(g, spandrel.ModelLoader().load_from_file(str(out)).model) < 1e-5


def test_run_folder_resolves_to_gan_then_psnr(tmp_path):
    g = net(4)
    interop.save_generator(tmp_path / "psnr.safetensors", g.state_dict(), args_of(g, 4))
    assert interop.resolve_model(tmp_path).name == "psnr.safetensors"
    interop.save_generator(tmp_path / "gan.safetensors", g.state_dict(), args_of(g, 4))
    assert interop.resolve_model(tmp_path).name == "gan.safetensors"
    (tmp_path / "empty").mkdir()
    with pytest.raises(interop.ModelFormatError, match="sr-train run folder"):
        interop.resolve_model(tmp_path / "empty")
