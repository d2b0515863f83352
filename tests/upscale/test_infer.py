"""Tiled upscaling: exact tiling equals the whole image, alpha / 16-bit / gray files round-trip."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from srpipe.errors import SrpipeError
from srpipe.upscale import interop
from srpipe.upscale.archs import RRDBNet
from srpipe.upscale.infer import upscale, upscale_tensor


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny nets: thread sync costs more than it saves
    yield
    torch.set_num_threads(threads)


def tiny(scale: int) -> RRDBNet:
    torch.manual_seed(scale)
    return RRDBNet(scale=scale, num_feat=8, num_block=1, num_grow_ch=8).eval()


@pytest.mark.parametrize("scale", [4, 2, 1])
def test_exact_tiling_equals_whole_image(scale):
    net = tiny(scale)
    img = torch.rand(3, 45, 58)  # not a multiple of the tile nor of the pixel-unshuffle factor
    whole = upscale_tensor(net, img, tile=0)
    assert whole.shape == (3, 45 * scale, 58 * scale)
    tiled = upscale_tensor(net, img, tile=16, pad=net.receptive_radius, blend=False)
    assert (tiled - whole).abs().max() < 1e-5
    # too little context changes the result: the check above is not vacuous
    short = upscale_tensor(net, img, tile=16, pad=0, blend=False)
    assert (short - whole).abs().max() > 1e-3


def test_feathered_tiling_is_close_to_whole_image():
    net = tiny(4)
    img = torch.rand(3, 40, 40)
    whole = upscale_tensor(net, img, tile=0)
    feathered = upscale_tensor(net, img, tile=16, pad=8, blend=True)
    assert feathered.shape == whole.shape
    assert (feathered - whole).abs().mean() < 0.01


def write_model(tmp_path, scale=4):
    net = tiny(scale)
    args = {"scale": scale, "num_in_ch": 3, "num_out_ch": 3, "num_feat": 8, "num_block": 1, "num_grow_ch": 8}
    return net, interop.save_generator(tmp_path / "m.safetensors", net.state_dict(), args)


def test_alpha_16bit_and_gray_are_kept(tmp_path):
    net, model = write_model(tmp_path)
    src = tmp_path / "in"
    src.mkdir()
    rng = np.random.default_rng(0)
    rgba = (rng.random((10, 12, 4)) * 255).astype(np.uint8)
    rgba[..., 3] = 255
    rgba[:5, :, 3] = 0  # top half transparent
    cv2.imwrite(str(src / "rgba.png"), rgba)
    cv2.imwrite(str(src / "deep.png"), (rng.random((10, 12, 3)) * 65535).astype(np.uint16))
    cv2.imwrite(str(src / "gray.png"), (rng.random((10, 12)) * 255).astype(np.uint8))
    written = upscale(model, src, tmp_path / "out", tile=8, tile_pad=4, device="cpu")
    assert sorted(p.name for p in written) == ["deep.png", "gray.png", "rgba.png"]
    a = cv2.imread(str(tmp_path / "out" / "rgba.png"), cv2.IMREAD_UNCHANGED)
    assert a.shape == (40, 48, 4) and a.dtype == np.uint8
    # the alpha plane went through the network on its own (as a gray image) and was written back
    alpha = torch.from_numpy(rgba[..., 3] / 255.0).float()[None].expand(3, -1, -1)
    expected = upscale_tensor(net, alpha, tile=8, pad=4).mean(0)
    assert np.abs(a[..., 3].astype(float) - expected.numpy() * 255).max() <= 1
    assert a[..., 3].std() > 0  # not an opaque default plane
    d = cv2.imread(str(tmp_path / "out" / "deep.png"), cv2.IMREAD_UNCHANGED)
    assert d.shape == (40, 48, 3) and d.dtype == np.uint16
    g = cv2.imread(str(tmp_path / "out" / "gray.png"), cv2.IMREAD_UNCHANGED)
    assert g.shape == (40, 48) and g.dtype == np.uint8


def test_single_file_outscale_and_skip_existing(tmp_path):
    net, model = write_model(tmp_path)
    img = (np.random.default_rng(1).random((12, 16, 3)) * 255).astype(np.uint8)
    cv2.imwrite(str(tmp_path / "a.png"), img)
    [out] = upscale(model, tmp_path / "a.png", tmp_path / "o", tile=0, device="cpu")
    got = cv2.imread(str(out))[:, :, ::-1]
    with torch.no_grad():
        ref = net(torch.from_numpy(img[:, :, ::-1].copy()).permute(2, 0, 1)[None].float() / 255)[0]
    ref = (ref.clamp(0, 1) * 255).round().permute(1, 2, 0).numpy().astype(np.uint8)
    assert np.abs(got.astype(int) - ref.astype(int)).max() <= 1
    assert upscale(model, tmp_path / "a.png", tmp_path / "o", device="cpu", skip_existing=True) == []
    [out2] = upscale(model, tmp_path / "a.png", tmp_path / "o2", device="cpu", outscale=2.5)
    assert cv2.imread(str(out2)).shape == (30, 40, 3)


def test_precision_and_input_errors(tmp_path):
    _, model = write_model(tmp_path)
    cv2.imwrite(str(tmp_path / "a.png"), np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(SrpipeError, match="fp16 needs a GPU"):
        upscale(model, tmp_path / "a.png", tmp_path / "o", device="cpu", precision="fp16")
    [bf] = upscale(model, tmp_path / "a.png", tmp_path / "o", device="cpu", precision="bf16")
    assert cv2.imread(str(bf)).shape == (32, 32, 3)
    with pytest.raises(SrpipeError, match="does not exist"):
        upscale(model, tmp_path / "missing.png", tmp_path / "o", device="cpu")
