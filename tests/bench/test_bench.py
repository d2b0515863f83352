"""bench/bench.py runs end to end (--smoke: tiny sizes); no timing is asserted."""

from __future__ import annotations

import importlib.util
import json
import sys

import pytest
import torch

from tests.helpers import ROOT

BENCH = ROOT / "bench" / "bench.py"


@pytest.fixture
def bench():
    spec = importlib.util.spec_from_file_location("srpipe_bench", BENCH)
    mod = importlib.util.module_from_spec(spec)
    sys.modules["srpipe_bench"] = mod  # dataclasses look their module up there
    try:
        spec.loader.exec_module(mod)
        yield mod
    finally:
        del sys.modules["srpipe_bench"]


@pytest.mark.slow
def test_bench_smoke_prints_every_row_with_device_and_ratio(bench, torch_home, tmp_path, capsys):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        rows = bench.main(["--smoke", "--device", "cpu", "--json", str(tmp_path / "r.json")])
    finally:
        torch.set_num_threads(threads)
    out = capsys.readouterr().out
    figures = [r.figure for r in rows]
    onnx_row = ["x4 upscaling: onnxruntime"] if importlib.util.find_spec("onnxruntime") else []  # the onnx extra
    assert figures == ["ESRGAN PSNR phase", "ESRGAN GAN phase", "DSGAN", "x4 upscaling", *onnx_row]
    for r in rows:
        assert r.srpipe > 0 and r.baseline > 0 and r.ratio > 0 and r.device.startswith("CPU")
        assert f"| {r.figure} | {r.device} |" in out
    assert "CPU figures are not the goal" in out
    assert "stand-ins" not in out  # the session's stand-in files were found under their real names
    saved = json.loads((tmp_path / "r.json").read_text())
    assert [r["figure"] for r in saved["rows"]] == figures and all(r["ratio"] for r in saved["rows"])
