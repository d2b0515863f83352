"""Resource faults: failed writes and CUDA out-of-memory.

A full disk or a read-only folder is injected as `OSError(ENOSPC)` from `os.replace` (the last step
of every atomic write) for chosen target paths, since tests may run as root, where permissions do
not stop writes. Each failure must give one clear line, keep what was there before (checkpoints,
caches, complete stage outputs) and leave nothing that looks complete; rerunning then finishes.
CUDA out-of-memory is simulated on the CPU by a network that raises `torch.cuda.OutOfMemoryError`
for tiles above a size.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.helpers import make_folder
from srpipe.engine import ckpt
from srpipe.cli import main
from srpipe.degrade.archs import DSGANGenerator
from srpipe.errors import SrpipeError
from srpipe.upscale import infer, interop
from srpipe.upscale.archs import RRDBNet


@pytest.fixture(autouse=True)
def _one_thread(tmp_path, monkeypatch):
    monkeypatch.setenv("SRPIPE_CACHE_DIR", str(tmp_path / "decode-cache"))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny nets: thread sync costs more than it saves
    yield
    torch.set_num_threads(threads)


class DiskFull:
    """`os.replace` that fails with ENOSPC for destinations matching `when(path)`; counts its refusals."""

    def __init__(self, monkeypatch, when):
        self.when, self.refused, self._real = when, [], os.replace
        monkeypatch.setattr(os, "replace", self)

    def __call__(self, src, dst, **kw):
        if self.when(Path(dst)):
            self.refused.append(Path(dst))
            raise OSError(errno.ENOSPC, "No space left on device", str(dst))
        return self._real(src, dst, **kw)


def cli(capsys, *args) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as e:
        main([str(a) for a in args])
    c = capsys.readouterr()
    return e.value.code, c.out, c.err


def one_error(code: int, err: str) -> str:
    assert code == 1 and "Traceback" not in err, err
    lines = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1, err
    assert "No space left on device" in lines[0] and "free disk space" in lines[0], lines[0]
    return lines[0]


def no_temp_files(root: Path) -> None:
    left = [p for p in root.rglob("*") if p.name.endswith(".tmp")]
    assert not left, left


def digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


DEGRADE = [
    "--preset",
    "tiny",
    "--iters",
    "6",
    "--ckpt-every",
    "2",
    "--device",
    "cpu",
    "--set",
    "data.hr_crop=32",
    "--set",
    "model.features=8",
    "--set",
    "model.res_blocks=1",
    "--set",
    "model.d_features=8",
    "--set",
    "optim.batch=2",
    "--set",
    "data.val_fraction=0",
]


@pytest.fixture
def folders(tmp_path):
    return make_folder(tmp_path / "hr", 3, (48, 48), seed=1), make_folder(tmp_path / "lr", 3, (24, 24), seed=2)


def test_disk_full_during_a_checkpoint_keeps_the_previous_one(tmp_path, capsys, monkeypatch, folders):
    hr, lr = folders
    run = tmp_path / "run"
    args = ["degrade-train", "--method", "dsgan", "--hr", hr, "--lr", lr, "--out", run, *DEGRADE]
    full = DiskFull(monkeypatch, lambda p: "step_00000004" in str(p))
    code, _, err = cli(capsys, *args)
    line = one_error(code, err)
    assert f"checkpoint {run / 'ckpt' / 'step_00000004'}" in line and "previous checkpoint" in line
    assert full.refused
    assert ckpt.latest_checkpoint(run / "ckpt") == run / "ckpt" / "step_00000002"
    nets, state = ckpt.load_checkpoint(run / "ckpt" / "step_00000002")
    assert state["step"] == 2 and set(nets) == {"generator", "discriminator"}
    assert not (run / "generator.safetensors").exists()
    no_temp_files(run)

    monkeypatch.undo()  # space freed: the same command resumes from step 2 and finishes
    code, out, err = cli(capsys, *args)
    assert code == 0, err
    assert "at step 2/6" in err and (run / "generator.safetensors").is_file()


def test_disk_full_writing_the_final_weights(tmp_path, capsys, monkeypatch, folders):
    hr, lr = folders
    run = tmp_path / "run"
    args = ["degrade-train", "--method", "dsgan", "--hr", hr, "--lr", lr, "--out", run, *DEGRADE]
    DiskFull(monkeypatch, lambda p: p.name == "generator.safetensors" and p.parent == run)
    code, _, err = cli(capsys, *args)
    assert str(run / "generator.safetensors") in one_error(code, err)
    assert not (run / "generator.safetensors").exists()
    assert ckpt.latest_checkpoint(run / "ckpt") == run / "ckpt" / "step_00000006"  # the training is not lost
    no_temp_files(run)
    monkeypatch.undo()
    code, _, err = cli(capsys, *args)
    assert code == 0 and "at step 6/6" in err and (run / "generator.safetensors").is_file(), err


@pytest.fixture
def dsgan_file(tmp_path) -> Path:
    p = tmp_path / "g.safetensors"
    ckpt.save_weights(
        p,
        DSGANGenerator(features=8, res_blocks=1).state_dict(),
        arch="DSGANGenerator",
        args={"features": 8, "res_blocks": 1},
        meta={"scale": 4},
    )
    return p


def test_disk_full_in_make_pairs_leaves_no_finished_looking_output(tmp_path, capsys, monkeypatch, dsgan_file):
    hr = make_folder(tmp_path / "hr", 3, (32, 32))
    out = tmp_path / "pairs"
    code, _, err = cli(capsys, "make-pairs", "--model", dsgan_file, "--hr", hr, "--out", out, "--device", "cpu")
    assert code == 0, err
    before = digest(out)
    DiskFull(monkeypatch, lambda p: p.name == "img_01.png" and p.parent.name == "lr")
    code, _, err = cli(capsys, "make-pairs", "--model", dsgan_file, "--hr", hr, "--out", out, "--device", "cpu")
    assert str(out / "lr" / "img_01.png") in one_error(code, err)
    assert not (out / "pairs.json").exists()  # the folder no longer claims to be complete
    after = digest(out)
    assert all(after[k] == before[k] for k in after)  # what was written before is intact, not truncated
    no_temp_files(out)
    monkeypatch.undo()
    code, _, err = cli(capsys, "make-pairs", "--model", dsgan_file, "--hr", hr, "--out", out, "--device", "cpu")
    assert code == 0 and digest(out) == before


def test_disk_full_writing_a_stage_manifest(tmp_path, capsys, monkeypatch):
    """The cache: earlier stages stay complete, the failed one is not marked complete, rerun finishes."""
    make_folder(tmp_path / "hr", 3, (48, 48), seed=1)
    make_folder(tmp_path / "lr", 3, (24, 24), seed=2)
    pipe = tmp_path / "pipe.toml"
    pipe.write_text(
        '[inputs]\nhr = "hr"\nreal_lr = "lr"\n[degrade]\nmethod = "dsgan"\npreset = "tiny"\n'
        "[degrade.config.data]\nhr_crop = 32\nval_fraction = 0.0\n"
        "[degrade.config.model]\nfeatures = 8\nres_blocks = 1\nd_features = 8\n"
        "[degrade.config.optim]\nbatch = 2\niters = 2\n[sr]\nenabled = false\n"
    )
    args = ["run", pipe, "--out", tmp_path / "run", "--cache", tmp_path / "cache", "--device", "cpu"]
    full = DiskFull(monkeypatch, lambda p: p.name == "manifest.json" and "pairs" in p.parts)
    code, _, err = cli(capsys, *args)
    line = one_error(code, err)
    assert "manifest.json" in line and "not marked complete" in line and full.refused
    [degrade] = (tmp_path / "cache" / "degrade").glob("*/*")
    [pairs] = (tmp_path / "cache" / "pairs").glob("*/*")
    assert json.loads((degrade / "manifest.json").read_text())["stage"] == "degrade"
    assert not (pairs / "manifest.json").exists()
    kept = digest(degrade)
    assert (tmp_path / "cache" / "lock").read_text() == ""  # released on the error path

    code, out, err = cli(capsys, "status", pipe, "--out", tmp_path / "run", "--cache", tmp_path / "cache")
    assert code == 0
    row = next(ln for ln in out.splitlines() if " pairs " in ln)
    assert "stale" in row and "interrupted" in row

    monkeypatch.undo()
    code, out, err = cli(capsys, *args)
    assert code == 0, err
    assert "degrade: cached" in err and "pairs: resuming" in err
    assert digest(degrade) == kept and (pairs / "manifest.json").is_file()


def test_disk_full_in_the_decode_cache_keeps_its_entries(tmp_path, capsys, monkeypatch):
    pairs = tmp_path / "pairs"
    make_folder(pairs / "hr", 2, (64, 64), seed=1)
    make_folder(pairs / "lr", 2, (16, 16), seed=1)
    args = [
        "sr-train",
        "--pairs",
        pairs,
        "--out",
        tmp_path / "run",
        "--preset",
        "tiny",
        "--psnr-iters",
        "1",
        "--gan-iters",
        "0",
        "--set",
        "data.hr_patch=32",
        "--set",
        "model.num_feat=8",
        "--set",
        "model.num_block=1",
        "--set",
        "batch=2",
        "--device",
        "cpu",
    ]
    code, _, err = cli(capsys, *args)
    assert code == 0, err
    cache = tmp_path / "decode-cache"
    kept = digest(cache)
    assert len(kept) == 4
    make_folder(pairs / "hr", 1, (64, 64), seed=7, prefix="new")
    make_folder(pairs / "lr", 1, (16, 16), seed=7, prefix="new")
    DiskFull(monkeypatch, lambda p: cache in p.parents)
    code, _, err = cli(capsys, *[a if a != tmp_path / "run" else tmp_path / "run2" for a in args])
    assert code == 1 and "Traceback" not in err
    assert "No space left on device" in err and "SRPIPE_CACHE_DIR" in err
    assert digest(cache) == kept  # old entries intact, no half-written new one
    no_temp_files(cache)


# ---------------------------------------------------------------------------------------------
# CUDA out-of-memory during inference backs off the tile size


class OomAbove(torch.nn.Module):
    """Wraps an RRDBNet; raises CUDA OOM for inputs with more than `limit` pixels, records sizes."""

    def __init__(self, net: RRDBNet, limit: int):
        super().__init__()
        self.net, self.limit, self.seen = net, limit, []
        self.scale, self.unshuffle = net.scale, net.unshuffle

    def forward(self, x):
        self.seen.append(tuple(x.shape[-2:]))
        if x.shape[-2] * x.shape[-1] > self.limit:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return self.net(x)


def _net(scale: int = 4) -> RRDBNet:
    torch.manual_seed(0)
    return RRDBNet(scale=scale, num_feat=8, num_block=1, num_grow_ch=32).eval()


@pytest.mark.parametrize("start", [128, 0])
def test_oom_halves_the_tile_until_it_fits(caplog, start):
    net = _net()
    img = torch.rand(3, 70, 90)
    oom = OomAbove(net, limit=(40 + 2 * 8) ** 2)
    out = infer.upscale_tensor(oom, img, tile=start, pad=8, device="cpu")
    err = caplog.text
    # 128 -> 64 -> 32 (or whole image 90 -> 45 -> 22... stops at a size whose tiles fit)
    steps = [ln for ln in err.splitlines() if "CUDA out of memory" in ln]
    assert len(steps) >= 1 and all("retrying with tile" in s for s in steps)
    final = int(steps[-1].rsplit(" ", 1)[1])
    assert max(h * w for h, w in oom.seen[-4:]) <= oom.limit
    expected = infer.upscale_tensor(net, img, tile=final, pad=8, device="cpu")
    assert out.shape == (3, 280, 360) and torch.equal(out, expected)


def test_oom_even_at_the_smallest_tile_is_one_clear_error():
    oom = OomAbove(_net(), limit=8 * 8)
    with pytest.raises(SrpipeError, match=r"out of GPU memory even with 32-pixel tiles; use --device cpu"):
        infer.upscale_tensor(oom, torch.rand(3, 64, 64), tile=64, pad=8, device="cpu")


def test_oom_back_off_through_the_cli(tmp_path, capsys, monkeypatch):
    args = {"scale": 4, "num_in_ch": 3, "num_out_ch": 3, "num_feat": 8, "num_block": 1, "num_grow_ch": 32}
    torch.manual_seed(0)
    model = interop.save_generator(tmp_path / "m.safetensors", RRDBNet(**args).state_dict(), args)
    make_folder(tmp_path / "in", 1, (80, 60))
    forward = RRDBNet.forward

    def limited(self, x):
        if x.shape[-2] * x.shape[-1] > 48 * 48:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory.")
        return forward(self, x)

    monkeypatch.setattr(RRDBNet, "forward", limited)
    code, out, err = cli(
        capsys,
        "upscale",
        "--model",
        model,
        "--input",
        tmp_path / "in",
        "--out",
        tmp_path / "sr",
        "--tile",
        128,
        "--tile-pad",
        4,
        "--device",
        "cpu",
    )
    assert code == 0 and "1 image(s) written" in out, err
    assert "CUDA out of memory with tile 128; retrying with tile 64" in err
    import cv2

    assert cv2.imread(str(tmp_path / "sr" / "img_00.png")).shape == (240, 320, 3)
    monkeypatch.undo()
    direct = infer.upscale_tensor(
        interop.load_generator(model)[0], _read(tmp_path / "in" / "img_00.png"), tile=32, pad=4, device="cpu"
    )
    got = cv2.imread(str(tmp_path / "sr" / "img_00.png"))[:, :, ::-1]
    assert np.array_equal(got, (direct.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy())


def _read(p: Path) -> torch.Tensor:
    from srpipe.io.imageio import read_image

    return read_image(p)[0]


def test_disk_full_anywhere_else_is_one_line_naming_the_file(tmp_path, capsys, monkeypatch, folders):
    """A write nobody wrapped (here the run's config.json) still names its file, not a temp file."""
    hr, lr = folders

    def fsync(fd):
        raise OSError(errno.ENOSPC, "No space left on device")  # as the kernel reports it: no file name

    monkeypatch.setattr(os, "fsync", fsync)
    code, _, err = cli(
        capsys, "degrade-train", "--method", "dsgan", "--hr", hr, "--lr", lr, "--out", tmp_path / "run", *DEGRADE
    )
    line = one_error(code, err)
    assert str(tmp_path / "run" / "config.json") in line and ".tmp" not in line
    no_temp_files(tmp_path / "run")
