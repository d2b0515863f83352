"""make-pairs and upscale under 2 gloo processes on the CPU: each rank takes a share of the files,
the outputs (pairs.json included) are byte-identical to one process, and a fault on one rank fails
both, naming the file."""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from pathlib import Path

import pytest
import torch

from tests.helpers import make_folder
from srpipe.engine import ckpt
from srpipe.degrade import pairs as pairs_mod
from srpipe.degrade.archs import DSGANGenerator
from srpipe.upscale import infer, interop
from srpipe.upscale.archs import RRDBNet

pytestmark = pytest.mark.ddp  # two gloo processes on the CPU

SR_ARGS = {"scale": 4, "num_feat": 8, "num_block": 1, "num_grow_ch": 8}


def _models(tmp: Path) -> tuple[Path, Path]:
    torch.manual_seed(3)
    g = tmp / "g.safetensors"
    ckpt.save_weights(
        g,
        DSGANGenerator(features=8, res_blocks=1).state_dict(),
        arch="DSGANGenerator",
        args={"features": 8, "res_blocks": 1},
        meta={"scale": 4},
    )
    sr = interop.save_generator(tmp / "sr.safetensors", RRDBNet(**SR_ARGS).state_dict(), SR_ARGS)
    return g, sr


def _run(tmp: Path, tag: str) -> list[str]:
    """make-pairs and upscale of tmp/hr, into tmp/<tag>_pairs and tmp/<tag>_up; the upscaled names."""
    pairs_mod.make_pairs(
        model=tmp / "g.safetensors",
        hr_dir=tmp / "hr",
        out_dir=tmp / f"{tag}_pairs",
        device="cpu",
        tile=24,
        jpeg="50:90",
    )  # per-image JPEG qualities, recorded in pairs.json
    written = infer.upscale(tmp / "sr.safetensors", tmp / "hr", tmp / f"{tag}_up", device="cpu", tile=16, tile_pad=4)
    return [p.name for p in written]


def _counting(module, name: str, calls: list):
    real = getattr(module, name)

    def counted(*a, **kw):
        calls.append(name)
        return real(*a, **kw)

    setattr(module, name, counted)


def _worker(rank: int, size: int, port: int, tmp: str) -> None:
    import torch.distributed as dist

    os.environ.update(
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(size)
    )
    torch.set_num_threads(1)
    tmp = Path(tmp)
    report = {}
    # One process group for the three commands (each would otherwise create and destroy its own).
    dist.init_process_group("gloo")
    try:
        calls: list[str] = []
        _counting(pairs_mod, "degrade_image", calls)
        _counting(infer, "upscale_tensor", calls)
        report["written"] = _run(tmp, "ddp")
        report["calls"] = list(calls)  # what this rank computed itself
        real_write = pairs_mod.write_png

        def disk_full_on_img_01(path, img):
            if rank == 1 and Path(path).stem == "img_01":
                raise OSError(28, "No space left on device", str(path))
            real_write(path, img)

        pairs_mod.write_png = disk_full_on_img_01
        try:
            pairs_mod.make_pairs(model=tmp / "g.safetensors", hr_dir=tmp / "hr", out_dir=tmp / "failed", device="cpu")
        except Exception as e:  # noqa: BLE001 - the type is what the test checks, on every rank
            report["failure"] = [type(e).__name__, str(e)]
        finally:
            pairs_mod.write_png = real_write
        dist.barrier()
    finally:
        (tmp / f"rank{rank}.json").write_text(json.dumps(report))
        dist.destroy_process_group()
    # As in test_ddp: skip exit-time destructors while gloo threads wind down (results are on disk).
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_two_processes_write_what_one_process_writes(tmp_path):
    make_folder(tmp_path / "hr", 3, (40, 36))  # 3 files: shares of 2 and 1
    _models(tmp_path)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        single = _run(tmp_path, "one")
    finally:
        torch.set_num_threads(threads)

    ctx = torch.multiprocessing.spawn(_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=False)
    deadline = time.time() + 240
    while not ctx.join(timeout=1):
        if time.time() > deadline:
            for p in ctx.processes:
                p.kill()
            pytest.fail("the workers did not finish (a rank waiting on a collective the other never made)")

    one, two = _files(tmp_path / "one_pairs"), _files(tmp_path / "ddp_pairs")
    assert sorted(one) == [
        "hr/img_00.png",
        "hr/img_01.png",
        "hr/img_02.png",
        "lr/img_00.png",
        "lr/img_01.png",
        "lr/img_02.png",
        "pairs.json",
    ]
    assert two == one  # byte-identical, pairs.json (written once, by rank 0) included
    assert sorted(json.loads(one["pairs.json"])["jpeg"]["qualities"]) == ["img_00", "img_01", "img_02"]
    assert _files(tmp_path / "ddp_up") == _files(tmp_path / "one_up") and len(_files(tmp_path / "one_up")) == 3
    reports = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [sorted(rep["calls"]) for rep in reports] == [  # round robin: files 0 and 2 on rank 0, 1 on rank 1
        ["degrade_image"] * 2 + ["upscale_tensor"] * 2,
        ["degrade_image", "upscale_tensor"],
    ]
    for rep in reports:
        assert rep["written"] == single == ["img_00.png", "img_01.png", "img_02.png"]  # every rank returns all
        kind, message = rep["failure"]
        assert kind == "ShardFailed"
        assert "rank 1 failed on file img_01.png" in message and "No space left on device" in message
    assert not (tmp_path / "failed" / "pairs.json").exists()
    assert (tmp_path / "failed" / "lr" / "img_02.png").is_file()  # rank 0 finished its own share
