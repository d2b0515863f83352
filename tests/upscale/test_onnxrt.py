"""ONNX: export (dynamic axes, fp32/fp16), reload, onnxruntime equal to torch; upscale with an .onnx model."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from tests.helpers import ROOT

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from srpipe.cli import main  # noqa: E402
from srpipe.io.imageio import read_image  # noqa: E402
from srpipe.upscale import infer, interop, onnxrt  # noqa: E402
from srpipe.upscale.archs import RRDBNet  # noqa: E402

PHOTO = ROOT / "data" / "demo" / "real_lr" / "diffbir_5.jpg"
ARGS = {"num_feat": 8, "num_block": 1, "num_grow_ch": 8}


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def weights(folder: Path, scale: int) -> Path:
    torch.manual_seed(scale)
    net = RRDBNet(scale=scale, **ARGS)
    return interop.save_generator(folder / f"x{scale}.safetensors", net.state_dict(), {"scale": scale, **ARGS})


def run(capsys, *args):
    with pytest.raises(SystemExit) as e:
        main([str(a) for a in args])
    captured = capsys.readouterr()
    return e.value.code, captured.out, captured.err


def test_export_fp32_and_fp16_equal_torch_on_a_real_photo(tmp_path, capsys):
    src = weights(tmp_path, 4)
    code, out, err = run(capsys, "export", "--model", src, "--out", tmp_path / "m.onnx", "--format", "onnx")
    assert code == 0, err
    assert out.strip() == str(tmp_path / "m.onnx") and "max |onnx - torch|" in err

    proto = onnx.load(str(tmp_path / "m.onnx"))
    onnx.checker.check_model(proto)
    dims = [
        [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]
        for v in (proto.graph.input[0], proto.graph.output[0])
    ]
    assert dims == [["batch", 3, "height", "width"], ["batch", 3, "height_out", "width_out"]]
    assert proto.opset_import[0].version == onnxrt.OPSET
    assert {p.key: p.value for p in proto.metadata_props}["srpipe_scale"] == "4"

    # reloaded by onnxruntime: a batch of two crops of a real photo, sizes other than the traced one
    photo, _ = read_image(PHOTO)
    x = torch.stack([photo[:, 10:70, 20:110], photo[:, 100:160, 200:290]])
    net, _, _ = interop.load_generator(src)
    with torch.no_grad():
        want = net(x)
    got = onnxrt.OnnxNet(tmp_path / "m.onnx", device="cpu")(x)
    assert got.shape == want.shape == (2, 3, 240, 360)
    assert float((got - want).abs().max()) <= onnxrt.FP32_TOL

    code, _, err = run(capsys, "export", "--model", src, "--out", tmp_path / "h.onnx", "--fp16")
    assert code == 0, err
    half = onnxrt.OnnxNet(tmp_path / "h.onnx", device="cpu")
    assert half.dtype is np.float16
    assert float((half(x) - want).abs().max()) <= onnxrt.FP16_TOL

    code, _, err = run(capsys, "export", "--model", src, "--out", tmp_path / "m.pth", "--format", "onnx")
    assert code == 1 and "name the file *.onnx" in err
    assert not (tmp_path / "m.pth").exists()


def test_a_failed_check_leaves_no_file(tmp_path, monkeypatch):
    src = weights(tmp_path, 4)
    monkeypatch.setattr(onnxrt, "max_difference", lambda *a: 2 * onnxrt.FP32_TOL)  # a runtime that disagrees
    with pytest.raises(onnxrt.OnnxError, match="nothing written"):
        onnxrt.export_onnx(src, tmp_path / "m.onnx")
    assert not (tmp_path / "m.onnx").exists()


def _rgba(path: Path, h: int, w: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    img = (cv2.resize(rng.random((4, 4, 4)).astype(np.float32), (w, h)) * 255).round().astype(np.uint8)
    cv2.imwrite(str(path), img)
    return img


def test_upscale_with_an_onnx_model_on_rgba_and_16_bit_inputs(tmp_path, capsys):
    """Same tiling, alpha and bit depth as the torch model; pixels within one level of it."""
    ins = tmp_path / "in"
    ins.mkdir()
    _rgba(ins / "rgba.png", 21, 27)  # odd sizes: the x2 model's pixel-unshuffle needs padding
    photo = cv2.imread(str(PHOTO))[:30, :34]
    cv2.imwrite(str(ins / "deep.png"), photo.astype(np.uint16) * 257 + np.arange(34, dtype=np.uint16)[None, :, None])
    src = weights(tmp_path, 2)
    assert run(capsys, "export", "--model", src, "--out", tmp_path / "x2.onnx")[0] == 0
    tiles = dict(tile=16, tile_pad=8, device="cpu")
    infer.upscale(src, ins, tmp_path / "torch", **tiles)
    code, out, err = run(
        capsys,
        "upscale",
        "--model",
        tmp_path / "x2.onnx",
        "--input",
        ins,
        "--out",
        tmp_path / "ort",
        "--tile",
        16,
        "--tile-pad",
        8,
        "--device",
        "cpu",
    )
    assert code == 0, err
    assert "ONNX x2" in err and "CPUExecutionProvider" in err
    for name, dtype, shape in (("rgba.png", np.uint8, (42, 54, 4)), ("deep.png", np.uint16, (60, 68, 3))):
        a = cv2.imread(str(tmp_path / "ort" / name), cv2.IMREAD_UNCHANGED)
        b = cv2.imread(str(tmp_path / "torch" / name), cv2.IMREAD_UNCHANGED)
        assert a.dtype == dtype and a.shape == shape
        # ~1e-7 apart before quantisation: at most a rounding flip of one level
        assert np.abs(a.astype(np.int64) - b.astype(np.int64)).max() <= 1, name

    code, _, err = run(
        capsys,
        "upscale",
        "--model",
        tmp_path / "x2.onnx",
        "--input",
        ins,
        "--out",
        tmp_path / "e",
        "--precision",
        "bf16",
        "--device",
        "cpu",
    )
    assert code == 1 and "precision it was exported in" in err
