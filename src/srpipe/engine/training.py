"""The set-up every training file shares, so that the file itself reads from top to bottom.

`training_run(run, batch=...)` is a context: it joins the torchrun process group (a world of one
without torchrun), resolves the run's precision, memory format and compile switch, takes this
rank's rows of the global batch, and closes the group on the way out. The `TrainingRun` it yields
then opens the run folder on rank 0 behind a barrier, prints the device line, places networks and
wraps them for the steps, and builds the optimisers, checkpoint, log and loop with the run's
options filled in::

    with training_run(run, batch=cfg.batch) as tr:
        out = tr.open(out_dir, record, clear=(...), split={...})
        G = tr.place(Net(**args))
        opt = tr.adam(G.parameters(), lr=..., betas=...)
        state = tr.checkpoint(out / "ckpt", {"generator": (G, "Net", args)}, {"opt_g": opt}, gen)
        start = resume(state, str(out), iters)
        log = tr.log(out, "log.csv", fields, start=start, config=record)
        g = tr.for_steps(G)
        tr.steps(step_fn, phase=PhaseInfo(...), iters=iters, start=start, state=state, log=log)

The loop itself (`run_steps`: resume, checkpoints, stop signals, bad steps, log rows) is in
`srpipe.engine.loop`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from srpipe.config import RunOptions
from srpipe.engine import accel, distributed
from srpipe.engine.accel import ComputeSettings
from srpipe.io.files import write_json
from srpipe.engine.loop import Checkpoint, PhaseInfo, TrainStep, run_steps
from srpipe.engine.runfolder import SPLIT, open_run
from srpipe.engine.runlog import RunLog
from srpipe.log import info


@dataclass(frozen=True)
class StepNets:
    """One network as the training steps use it.

    `net` is the plain module: the one saved, averaged into an EMA and evaluated. `train` is `net`
    under DDP (several processes) and torch.compile, for the step that updates it. `frozen` is the
    view for the other network's step, where this one only scores (a discriminator during the
    generator step): no DDP there, since it gets no gradients to synchronise.
    """

    net: nn.Module
    train: nn.Module
    frozen: nn.Module


def set_lr(opt: torch.optim.Optimizer, lr: float) -> None:
    """The learning rate of every parameter group of `opt` (schedules are pure functions of the step)."""
    for group in opt.param_groups:
        group["lr"] = lr


def every(n: int, fn: Callable[[int], dict | None]) -> Callable[[int], dict | None]:
    """An `after_step` for `run_steps`: `fn(step)` on steps divisible by `n` (never when `n` is 0)."""

    def after_step(step: int) -> dict | None:
        return fn(step) if n and step % n == 0 else None

    return after_step


@dataclass(frozen=True)
class TrainingRun:
    """This process's part of one training run (see the module docstring)."""

    run: RunOptions
    world: distributed.World
    device: torch.device
    compute: ComputeSettings  # precision (autocast dtype), memory format, compile switch
    rows: slice  # this rank's rows of the global batch

    @property
    def main(self) -> bool:
        """Rank 0: the process that writes files, logs and progress."""
        return self.world.main

    def open(self, out_dir, record: dict, *, clear: tuple[str, ...], split: dict | None = None) -> Path:
        """The run folder: rank 0 creates or reopens it for `record` (`runfolder.open_run`: a run with
        another config is refused unless --restart, which deletes the `clear` files) and writes
        `split.json`; every rank waits for that before it reads a checkpoint from there."""
        out = Path(out_dir)
        if self.main:
            out = open_run(
                out_dir, record, restart=self.run.restart, identity=self.run.resume_identity or None, clear=clear
            )
            if split is not None:
                write_json(out / SPLIT, split)
        self.world.barrier()
        return out

    def announce(self, data: str) -> None:
        """The device line: where the steps run, how (`compute.describe`), and where the data lives."""
        procs = f" x{self.world.size} processes" if self.world.size > 1 else ""
        info(f"on {self.device}{procs}: {self.compute.describe()}; {data}")

    def place(self, net: nn.Module) -> nn.Module:
        """`net` on the device, channels-last when on; batch norm over the global batch under DDP."""
        if self.world.size > 1:
            distributed.convert_sync_batchnorm(net)  # batch statistics of the global batch
        return self.compute.prepare(net)

    def for_steps(self, net: nn.Module) -> StepNets:
        """`net` wrapped for the steps: DDP (several processes) and torch.compile. Save `net`, never these."""
        train = self.compute.compiled(self.world.wrap(net))
        return StepNets(net, train, train if self.world.size == 1 else self.compute.compiled(net))

    def adam(self, params, *, lr: float, betas: tuple[float, float]) -> torch.optim.Adam:
        """Adam, fused where the device has the kernel (`accel.adam`)."""
        return accel.adam(params, lr=lr, betas=betas, device=self.device)

    def checkpoint(
        self, folder: Path, nets: dict[str, tuple[nn.Module, str, dict]], optimizers: dict, data_rng: torch.Generator
    ) -> Checkpoint:
        """What a checkpoint in `folder` holds (`loop.Checkpoint`), keeping `--keep-ckpts` of them."""
        return Checkpoint(folder, nets, optimizers, data_rng, keep=self.run.keep_ckpts)

    def log(
        self, out: Path, csv_name: str, fields: list[str], *, start: int, events: str = "", config: dict | None = None
    ) -> RunLog | None:
        """The loss log of one run or phase on rank 0 (CSV and/or TensorBoard, `--log`); None elsewhere."""
        if not self.main:
            return None
        return RunLog(out, csv_name, fields, resume_step=start, mode=self.run.log, events=events, config=config)

    def steps(
        self,
        train_step: TrainStep,
        *,
        phase: PhaseInfo,
        iters: int,
        start: int,
        state: Checkpoint,
        log: RunLog | None,
        guarded: Sequence[nn.Module] = (),
        after_step: Callable[[int], dict | None] | None = None,
    ) -> None:
        """`loop.run_steps` with this run's world, device and options."""
        run_steps(
            train_step,
            phase=phase,
            iters=iters,
            start=start,
            state=state,
            world=self.world,
            device=self.device,
            run=self.run,
            log=log,
            guarded=guarded,
            after_step=after_step,
        )


@contextmanager
def training_run(run: RunOptions, *, batch: int, batch_what: str = "batch") -> Iterator[TrainingRun]:
    """Join the process group (under torchrun), resolve how the networks compute, shard the batch.

    `batch` is the global batch, split evenly over the processes (`batch_what` names its config key
    in the error when it does not divide). The process group is closed when the block ends, also
    after an error.
    """
    world, device = distributed.init(run.device)
    try:
        compute = ComputeSettings.resolve(run, device)
        yield TrainingRun(run, world, device, compute, world.shard(batch, batch_what))
    finally:
        world.close()
