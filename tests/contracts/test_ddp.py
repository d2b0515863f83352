"""DDP on the CPU (gloo, 2 processes): the result does not depend on how the batch is split.

1. The real DSGAN and ESRGAN step functions, float64, discriminators with batch norm, Adam: after a
   few steps two processes holding half of the global batch each end with the weights of one process
   holding all of it (tolerance 1e-9). This covers SyncBatchNorm2d, the global relativistic average
   and the DDP gradient average.
2. `degrade-train` itself under 2 ranks: a stop signal seen by rank 1 only stops both at the same step,
   rank 0 writes the checkpoint, the rerun resumes, only rank 0 writes files, and the generator equals
   a 1-process run's (every rank draws the same global batch).
"""

from __future__ import annotations

import os
import socket
import sys
import time

import pytest
import torch

from tests.helpers import make_folder
from srpipe.engine import accel, distributed, loop
from srpipe.config import RunOptions, build_config
from srpipe.degrade import train as dsgan
from srpipe.degrade.archs import DSGANDiscriminator, DSGANGenerator
from srpipe.degrade.config import DegradeConfig
from srpipe.engine.signals import Interrupted
from srpipe.upscale import train as esrgan
from srpipe.upscale.archs import PatchDiscriminator, RRDBNet
from srpipe.upscale.config import UpscaleConfig

pytestmark = pytest.mark.ddp  # two gloo processes on the CPU

CPU = torch.device("cpu")
GLOBAL_BATCH, STEPS = 4, 3
TINY_DSGAN = {
    "data": {"hr_crop": 32, "val_fraction": 0.0},
    "model": {"features": 8, "res_blocks": 1, "d_features": 8},
    "loss": {"perceptual": "none", "w_adv": 0.05},
    "optim": {"batch": 2, "iters": 4, "lr": 1e-3},
}


def run_steps(world: distributed.World) -> dict[str, torch.Tensor]:
    """A few DSGAN and ESRGAN (GAN phase) steps on this rank's share of fixed global batches."""
    compute = accel.ComputeSettings(CPU, autocast=None, channels_last=False, compile=False)
    rows = world.shard(GLOBAL_BATCH)
    data = torch.Generator().manual_seed(1)
    batch = lambda *shape: torch.rand(GLOBAL_BATCH, *shape, generator=data, dtype=torch.float64)[rows]  # noqa: E731
    out: dict[str, torch.Tensor] = {}

    torch.manual_seed(0)
    dcfg = build_config(DegradeConfig, preset=TINY_DSGAN)
    G, D = DSGANGenerator(features=4, res_blocks=1).double(), DSGANDiscriminator(features=4).double()
    if world.size > 1:
        distributed.convert_sync_batchnorm(D)
    opt_g = accel.adam(G.parameters(), lr=1e-3, betas=(0.5, 0.999), device=CPU)
    opt_d = accel.adam(D.parameters(), lr=1e-3, betas=(0.5, 0.999), device=CPU)
    G_train, D_train, guard = world.wrap(G), world.wrap(D), accel.StepGuard(CPU)
    for _ in range(STEPS):
        x, real = batch(3, 8, 8), batch(3, 8, 8)
        guard.begin(D)
        dsgan.d_step(G, D_train, opt_d, x, real, dcfg, compute=compute, guard=guard)
        dsgan.g_step(G_train, D, opt_g, x, real, None, dcfg, compute=compute, guard=guard)
        assert float(guard.end()) == 0
    out.update({f"dsgan_g.{k}": v for k, v in G.state_dict().items()})
    out.update({f"dsgan_d.{k}": v for k, v in D.state_dict().items()})

    torch.manual_seed(0)
    ucfg = build_config(
        UpscaleConfig,
        sets=[
            "data.hr_patch=32",
            "model.discriminator=patch",
            "gan.perceptual=none",
            "gan.w_pixel=0.01",
            "gan.w_adv=0.1",
        ],
    )
    G, D = RRDBNet(scale=4, num_feat=4, num_block=1, num_grow_ch=4).double(), PatchDiscriminator(num_feat=4).double()
    if world.size > 1:
        distributed.convert_sync_batchnorm(D)
    ema = esrgan.copy.deepcopy(G)
    opt_g = accel.adam(G.parameters(), lr=1e-3, betas=(0.9, 0.99), device=CPU)
    opt_d = accel.adam(D.parameters(), lr=1e-3, betas=(0.9, 0.99), device=CPU)
    G_train, D_train = world.wrap(G), world.wrap(D)
    for _ in range(STEPS):
        lr, hr = batch(3, 8, 8), batch(3, 32, 32)
        guard.begin(D)
        _, sr = esrgan.g_step(G_train, D, opt_g, lr, hr, ucfg, compute=compute, guard=guard)
        esrgan.d_step(D_train, opt_d, sr, hr, compute=compute, guard=guard)
        esrgan.ema_update(ema, G, 0.9)
        assert float(guard.end()) == 0
    for name, net in (("esrgan_g", G), ("esrgan_d", D), ("esrgan_ema", ema)):
        out.update({f"{name}.{k}": v for k, v in net.state_dict().items()})
    return out


class _StopAfter:
    """A StopFlag stand-in that "receives SIGTERM" from its `n`-th poll on."""

    def __init__(self, n):
        self.n, self.calls = n, 0

    def __enter__(self):
        return self

    def __exit__(self, *a):
        pass

    def __bool__(self):
        self.calls += 1
        return self.calls >= self.n


def _worker(rank: int, size: int, port: int, tmp: str) -> None:
    os.environ.update(
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(size)
    )
    torch.set_num_threads(1)
    world, device = distributed.init("cpu")  # the real plumbing: gloo on the CPU
    assert device == CPU and world.size == size and world.rank == rank
    try:
        steps = run_steps(world)
        if world.main:
            torch.save(steps, os.path.join(tmp, "ddp_steps.pt"))

        cfg = build_config(DegradeConfig, preset=TINY_DSGAN)
        kw = dict(
            hr_dir=os.path.join(tmp, "hr"), real_lr_dir=os.path.join(tmp, "lr"), out_dir=os.path.join(tmp, "ddp_run")
        )
        run = RunOptions(device="cpu", log_every=1, ckpt_every=10)
        real_stop = loop.StopFlag
        loop.StopFlag = (lambda: _StopAfter(2)) if rank == 1 else real_stop  # only rank 1 gets the signal
        try:
            dsgan.train(cfg, run=run, **kw)
            raise AssertionError("rank did not stop")
        except Interrupted:
            pass
        finally:
            loop.StopFlag = real_stop
        dsgan.train(cfg, run=run, **kw)  # resumes from the step-2 checkpoint
    finally:
        world.close()
    # Leave without the interpreter's exit-time destructors: gloo's threads may still be winding
    # down there, which is not what this test checks (the results are on disk already).
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_gloo_processes_equal_one_process(tmp_path, monkeypatch):
    from srpipe.engine import ckpt

    hr, lr = make_folder(tmp_path / "hr", 2, (40, 40)), make_folder(tmp_path / "lr", 2, (16, 16), prefix="lr", seed=1)
    ctx = torch.multiprocessing.spawn(_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=False)
    deadline = time.time() + 300
    while not ctx.join(timeout=1):
        if time.time() > deadline:
            for p in ctx.processes:
                p.kill()
            pytest.fail("the DDP workers did not finish (a rank waiting on a collective the other never made)")

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        # 1. step functions: equal to one process with the whole batch
        got, want = torch.load(tmp_path / "ddp_steps.pt"), run_steps(distributed.World())
        assert got.keys() == want.keys()
        for k in want:
            assert got[k].dtype == want[k].dtype
            assert torch.allclose(got[k], want[k], rtol=0, atol=1e-9), (k, (got[k] - want[k]).abs().max())
        assert any(k.endswith("running_var") for k in want)  # batch norm was really there

        # 2. degrade-train under 2 ranks: stop on one rank's signal, resume, rank-0-only files
        out = tmp_path / "ddp_run"
        steps = [r.split(",")[0] for r in (out / "log.csv").read_text().splitlines()[1:]]
        assert steps == ["1", "2", "3", "4"]  # one writer, resumed after step 2
        assert sorted(p.name for p in (out / "ckpt").iterdir() if p.name.startswith("step_")) == [
            "step_00000002",
            "step_00000004",
        ]
        single = dsgan.train(
            build_config(DegradeConfig, preset=TINY_DSGAN),
            hr_dir=hr,
            real_lr_dir=lr,
            out_dir=tmp_path / "one",
            run=RunOptions(device="cpu", log_every=1, ckpt_every=10),
        )
        a, _ = ckpt.load_weights(out / "generator.safetensors")
        b, _ = ckpt.load_weights(single)
        for k in a:
            torch.testing.assert_close(a[k], b[k], rtol=0, atol=1e-5)
    finally:
        torch.set_num_threads(threads)
