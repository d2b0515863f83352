"""srpipe.engine.loop on a one-layer network: log cadence, checkpoint schedule, stop and resume, bad-step streak."""

from __future__ import annotations

import csv
import math

import pytest
import torch

from srpipe.engine import accel, ckpt, loop
from srpipe.config import RunOptions
from srpipe.engine.distributed import World
from srpipe.engine.runlog import RunLog
from srpipe.engine.signals import Interrupted

CPU = torch.device("cpu")


class Toy:
    """A 4 -> 1 linear net fitted by Adam to a fixed target; `bad` steps get a NaN loss."""

    def __init__(self, folder, bad=()):
        torch.manual_seed(0)
        self.net = torch.nn.Linear(4, 1)
        self.opt = accel.adam(self.net.parameters(), lr=1e-2, betas=(0.9, 0.99), device=CPU)
        self.data = torch.Generator().manual_seed(1)
        self.bad = set(bad)
        self.state = loop.Checkpoint(folder, {"net": (self.net, "Linear", {})}, {"opt": self.opt}, self.data)

    def step(self, step: int, guard: accel.StepGuard):
        x = torch.rand(8, 4, generator=self.data)
        loss = (self.net(x) - x.sum(1, keepdim=True)).square().mean()
        if step in self.bad:
            loss = loss * math.nan
        self.opt.zero_grad(set_to_none=True)
        guard.backward(loss)
        guard.step(self.opt)
        return 1e-2, {"loss": loss.detach()}


def phase(tmp_path, name=None):
    return loop.PhaseInfo("toy", {"loss": "loss"}, name=name, lr_keys="toy.lr", inputs="the toy data")


def go(tmp_path, toy, iters=7, name=None, **run):
    opts = RunOptions(ckpt_every=3, log_every=2, **run)
    start = loop.resume(toy.state, "toy", iters)
    log = RunLog(tmp_path, "log.csv", ["lr", "loss", "skipped"], resume_step=start, mode="csv")
    loop.run_steps(
        toy.step,
        phase=phase(tmp_path, name),
        iters=iters,
        start=start,
        state=toy.state,
        world=World(),
        device=CPU,
        run=opts,
        log=log,
    )


def test_log_rows_and_checkpoints_follow_the_schedule(tmp_path):
    go(tmp_path, Toy(tmp_path / "ckpt"))
    with (tmp_path / "log.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    # every log_every (2) steps, every checkpoint (3), the first and the last step
    assert [int(r["step"]) for r in rows] == [1, 2, 3, 4, 6, 7]
    assert all(float(r["loss"]) > 0 and r["skipped"] == "0" for r in rows)
    # checkpoints at 3 and 6 by the schedule, 7 at the end (keep=2 leaves the last two)
    assert ckpt.latest_checkpoint(tmp_path / "ckpt").name == "step_00000007"
    assert sorted(p.name for p in (tmp_path / "ckpt").glob("step_*")) == ["step_00000006", "step_00000007"]
    assert loop.ckpt_interval(RunOptions(), 100) == 50 and loop.ckpt_interval(RunOptions(), 10**6) == 5000


class StopAt:
    def __init__(self, step):
        self.left = step

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return None

    def __bool__(self):
        self.left -= 1
        return self.left <= 0


def test_a_stop_saves_and_the_rerun_resumes_bit_exact(tmp_path, monkeypatch):
    straight = Toy(tmp_path / "a" / "ckpt")
    go(tmp_path / "a", straight)
    monkeypatch.setattr(loop, "StopFlag", lambda: StopAt(2))
    with pytest.raises(Interrupted, match=r"stopped by signal in the psnr phase at step 2; checkpoint saved in"):
        go(tmp_path / "b", Toy(tmp_path / "b" / "ckpt"), name="psnr")
    assert ckpt.latest_checkpoint(tmp_path / "b" / "ckpt").name == "step_00000002"
    monkeypatch.undo()
    resumed = Toy(tmp_path / "b" / "ckpt")  # a fresh process: weights, moments and data stream from the checkpoint
    go(tmp_path / "b", resumed, name="psnr")
    for a, b in zip(straight.net.parameters(), resumed.net.parameters()):
        assert torch.equal(a, b)


def test_a_streak_of_non_finite_losses_stops_with_what_to_do(tmp_path):
    toy = Toy(tmp_path / "ckpt", bad={4, 5, 6})
    with pytest.raises(accel.NonFiniteError) as e:
        go(tmp_path, toy, iters=20, max_bad_steps=3)
    msg = str(e.value)
    assert msg.startswith("stopped at step 6: the loss was non-finite (NaN/Inf) 3 steps in a row")
    assert "step_00000003" in msg and "--set toy.lr=" in msg and "check the toy data" in msg
