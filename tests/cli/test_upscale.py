"""The ESRGAN commands end to end: sr-train -> interpolate -> upscale -> export, and their errors."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from srpipe.cli import main


@pytest.fixture(autouse=True)
def _cache_and_threads(tmp_path, monkeypatch):
    monkeypatch.setenv("SRPIPE_CACHE_DIR", str(tmp_path / "cache"))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny nets: thread sync costs more than it saves
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def pairs(tmp_path):
    rng = np.random.default_rng(3)
    root = tmp_path / "pairs"
    for d in ("hr", "lr"):
        (root / d).mkdir(parents=True)
    for i in range(3):
        hr = (cv2.resize(rng.random((6, 6, 3)).astype(np.float32), (40, 40)).clip(0, 1) * 255).astype(np.uint8)
        cv2.imwrite(str(root / "hr" / f"x{i}.png"), hr)
        cv2.imwrite(str(root / "lr" / f"x{i}.png"), cv2.resize(hr, (10, 10), interpolation=cv2.INTER_AREA))
    return root


@pytest.fixture
def toml(tmp_path):
    p = tmp_path / "small.toml"
    p.write_text(
        "batch = 2\n[data]\nhr_patch = 32\n[model]\nnum_feat = 8\nnum_block = 1\nnum_grow_ch = 32\nd_features = 8\n"
    )
    return p


def run(capsys, *args):
    with pytest.raises(SystemExit) as e:
        main([str(a) for a in args])
    captured = capsys.readouterr()
    return e.value.code, captured.out, captured.err


def test_train_interpolate_upscale_export(tmp_path, pairs, toml, capsys):
    code, out, err = run(
        capsys,
        "sr-train",
        "--pairs",
        pairs,
        "--out",
        tmp_path / "run",
        "--preset",
        "tiny",
        "--config",
        toml,
        "--psnr-iters",
        2,
        "--gan-iters",
        2,
        "--device",
        "cpu",
        "--export-pth",
    )
    assert code == 0, err
    assert f"psnr: {tmp_path / 'run' / 'psnr.safetensors'}" in out and "gan: " in out
    assert "phases: psnr -> gan" in err
    assert (tmp_path / "run" / "gan.pth").is_file() and (tmp_path / "run" / "psnr.pth").is_file()

    code, out, err = run(
        capsys,
        "interpolate",
        "--psnr",
        tmp_path / "run" / "psnr.safetensors",
        "--gan",
        tmp_path / "run" / "gan.safetensors",
        "--alpha",
        0.8,
        "--out",
        tmp_path / "a08.safetensors",
    )
    assert code == 0, err
    assert (tmp_path / "a08.safetensors").is_file()

    code, out, err = run(
        capsys,
        "upscale",
        "--model",
        tmp_path / "a08.safetensors",
        "--input",
        pairs / "lr",
        "--out",
        tmp_path / "sr",
        "--device",
        "cpu",
        "--tile",
        8,
        "--tile-pad",
        4,
    )
    assert code == 0, err
    assert "3 image(s) written" in out
    assert cv2.imread(str(tmp_path / "sr" / "x0.png")).shape == (40, 40, 3)

    code, out, err = run(capsys, "export", "--model", tmp_path / "run", "--out", tmp_path / "gan_basicsr.pth")
    assert code == 0, err
    raw = torch.load(tmp_path / "gan_basicsr.pth", weights_only=True)
    assert "params_ema" in raw and "conv_first.weight" in raw["params_ema"]


def test_interpolate_help_states_the_alpha_convention(capsys):
    code, out, _ = run(capsys, "interpolate", "--help")
    assert code == 0
    assert "Weight of the GAN model" in " ".join(out.split())
    assert "(1 - alpha) * PSNR + alpha * GAN" in " ".join(out.split())


def test_interpolate_errors(tmp_path, capsys):
    code, _, err = run(capsys, "interpolate", "--psnr", "a", "--gan", "b", "--out", tmp_path / "o.safetensors")
    assert code == 2 and "exactly one of --alpha" in err
    code, _, err = run(
        capsys, "interpolate", "--psnr", "a", "--gan", "b", "--alpha", 1.5, "--out", tmp_path / "o.safetensors"
    )
    assert code == 1 and "alpha must be in [0, 1]" in err and "Traceback" not in err


def test_pair_size_error_names_the_file(tmp_path, pairs, toml, capsys):
    cv2.imwrite(str(pairs / "lr" / "x1.png"), np.zeros((10, 9, 3), np.uint8))
    code, _, err = run(
        capsys,
        "sr-train",
        "--pairs",
        pairs,
        "--out",
        tmp_path / "run",
        "--preset",
        "tiny",
        "--config",
        toml,
        "--device",
        "cpu",
    )
    assert code == 1 and "Traceback" not in err
    assert "pair x1:" in err and "lr/x1.png is 9x10" in " ".join(err.split())
    assert not (tmp_path / "run").exists()


def test_config_errors_are_one_line(tmp_path, pairs, capsys):
    code, _, err = run(
        capsys, "sr-train", "--pairs", pairs, "--out", tmp_path / "run", "--preset", "tiny", "--set", "data.hr_patch=30"
    )
    assert code == 2 and "multiple of data.scale" in err and "Traceback" not in err
    code, _, err = run(
        capsys,
        "sr-train",
        "--pairs",
        pairs,
        "--out",
        tmp_path / "run",
        "--set",
        "model.discriminator=vgg",
        "--set",
        "data.hr_patch=64",
    )
    assert code == 2 and "needs data.hr_patch 128 or 256" in " ".join(err.split())
