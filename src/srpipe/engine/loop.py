"""The training loop of DSGAN and of both ESRGAN phases.

A stage builds its networks, optimizers and data stream, says what a checkpoint holds (`Checkpoint`)
and hands `run_steps` one function that does a training step (its `g_step` / `d_step`). The loop
owns everything around the steps:

- resuming from the last checkpoint and the checkpoint schedule (about ten per run by default);
- SIGINT/SIGTERM polling: the flag is read once per step, and under DDP the ranks vote at the next
  loss read, so that all of them stop at the same step with one checkpoint;
- the bad-step streak: a non-finite loss skips its update on the device (`accel.StepGuard`), and
  `run.max_bad_steps` of them in a row stop the run with a message that says what to change;
- the loss log rows (`runlog.RunLog`: CSV and/or TensorBoard) and the progress display.

Losses, the streak and the stop vote are read from the device every `run.log_every` steps and at
checkpoints, in one transfer: no host sync on the other steps.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from srpipe.engine import accel, ckpt
from srpipe.engine.accel import LossMeter, NonFiniteError, StepGuard
from srpipe.config import RunOptions
from srpipe.engine.distributed import World
from srpipe.log import info, progress, warn
from srpipe.engine.runlog import RunLog
from srpipe.engine.signals import Interrupted, StopFlag

# (step, guard) -> (learning rate to log, this step's losses as device tensors)
TrainStep = Callable[[int, StepGuard], tuple[float, dict[str, torch.Tensor]]]


def ckpt_interval(run: RunOptions, iters: int) -> int:
    """Steps between checkpoints: `run.ckpt_every`, or about ten per run (50 to 5000 steps apart)."""
    return run.ckpt_every or max(50, min(5000, iters // 10))


@dataclass
class Checkpoint:
    """What a checkpoint of one run (or phase) holds, and where it lives.

    `nets` maps a name to (module, architecture name, constructor arguments); `optimizers` maps a
    state key to its optimizer. The data stream's generator and the global RNG state come along.
    """

    folder: Path
    nets: dict[str, tuple[nn.Module, str, dict]]
    optimizers: dict[str, torch.optim.Optimizer]
    data_rng: torch.Generator
    keep: int = 2

    def save(self, step: int) -> None:
        ckpt.save_checkpoint(
            self.folder,
            step,
            {name: (net.state_dict(), arch, args) for name, (net, arch, args) in self.nets.items()},
            {
                **{key: opt.state_dict() for key, opt in self.optimizers.items()},
                "data_rng": self.data_rng.get_state(),
                "rng": ckpt.rng_state(),
            },
            keep=self.keep,
        )

    @staticmethod
    def reached(folder: Path, iters: int) -> bool:
        """Whether the latest checkpoint in `folder` is at step `iters` or later: that run (or phase)
        is complete, and only its final files are left to check."""
        last = ckpt.latest_checkpoint(folder)
        return last is not None and int(ckpt.load_state(last / ckpt.STATE)["step"]) >= iters

    def resume(self) -> int:
        """Load the latest checkpoint into the networks, optimizers and RNGs; its step, or 0 if none."""
        last = ckpt.latest_checkpoint(self.folder)
        if last is None:
            return 0
        nets, state = ckpt.load_checkpoint(last)
        for name, (net, _, _) in self.nets.items():
            net.load_state_dict(nets[name])
        for key, opt in self.optimizers.items():
            accel.load_optimizer(opt, state[key])
        self.data_rng.set_state(state["data_rng"])
        ckpt.set_rng_state(state["rng"])
        return int(state["step"])


@dataclass(frozen=True)
class PhaseInfo:
    """The words of one run of steps: its progress label, what it shows, and hints for messages."""

    description: str  # progress label, e.g. "degrade-train" or "sr-train psnr"
    shown: dict[str, str]  # log key -> progress label, for the values worth showing
    name: str | None = None  # "psnr" / "gan" for a phase of a multi-phase run
    lr_keys: str = "optim.lr"  # the config keys a user lowers after non-finite losses
    inputs: str = "the input images"  # what to check after non-finite losses


def run_steps(
    train_step: TrainStep,
    *,
    phase: PhaseInfo,
    iters: int,
    start: int,
    state: Checkpoint,
    world: World,
    device: torch.device,
    run: RunOptions,
    log: RunLog | None,
    guarded: Sequence[nn.Module] = (),
    after_step: Callable[[int], dict[str, float] | None] | None = None,
) -> None:
    """Steps `start + 1 .. iters`, then a checkpoint of the last step unless the schedule wrote one.

    `log` (None on ranks other than 0) gets the rows and is closed at the end; the stage creates it
    (it also writes sample grids there). `guarded` modules get their buffers put back after a
    skipped step (see `accel.StepGuard`).
    `after_step(step)` runs after every step (sample grids, validation); the values it returns join
    that step's log row (an empty dict still writes one).
    """
    ckpt_every = ckpt_interval(run, iters)
    guard, meter = StepGuard(device), LossMeter()
    where = f" in the {phase.name} phase" if phase.name else ""
    try:
        with StopFlag() as stop, progress(iters, phase.description, start=start, enabled=world.main) as bar:
            for step in range(start + 1, iters + 1):
                guard.begin(*guarded)
                lr, losses = train_step(step, guard)
                meter.add(losses, guard.end())

                row = None
                polled = bool(stop)  # read once: a signal landing between two reads must not skip the save
                stopping = polled and world.size == 1
                if step % run.log_every == 0 or step % ckpt_every == 0 or step in (start + 1, iters) or stopping:
                    values, skipped, (streak, votes) = meter.read(world, [guard.streak, torch.tensor(float(polled))])
                    stopping = votes > 0
                    if streak / world.size >= run.max_bad_steps:
                        raise too_many_bad_steps(phase, step, int(streak / world.size), state.folder)
                    if skipped:
                        warn(
                            f"step {step}: {skipped} step(s) with a non-finite loss since the last report; "
                            "their updates were skipped"
                        )
                    row = {**values, "skipped": skipped}
                    bar.update(step, {label: values[k] for k, label in phase.shown.items() if k in values})
                else:
                    bar.update(step)
                extra = after_step(step) if after_step is not None else None
                if extra is not None:
                    row = {**(row or {}), **extra}
                    shown = {label: extra[k] for k, label in phase.shown.items() if k in extra}
                    if shown:
                        bar.update(step, shown)
                if row is not None and log is not None:
                    log.write(step, {"lr": lr, **row})
                if step % ckpt_every == 0 or stopping:
                    if world.main:
                        state.save(step)
                if stopping:
                    raise Interrupted(
                        f"stopped by signal{where} at step {step}; checkpoint saved in {state.folder}; "
                        "rerun the same command to resume"
                    )
    finally:
        if log is not None:
            log.close()
    if start < iters and iters % ckpt_every and world.main:
        state.save(iters)


def resume(state: Checkpoint, what: str, iters: int) -> int:
    """`state.resume()`, saying so when a checkpoint was found."""
    start = state.resume()
    if start:
        info(f"resuming {what} at step {start}/{iters}")
    return start


def too_many_bad_steps(phase: PhaseInfo, step: int, streak: int, ckpt_dir: Path) -> NonFiniteError:
    """The message for a run stopped by repeated non-finite losses."""
    last = ckpt.latest_checkpoint(ckpt_dir)
    this = " of this phase" if phase.name else ""
    kept = f"the last good checkpoint, {last}, is kept" if last else f"no checkpoint{this} had been written yet"
    where = f" in the {phase.name} phase" if phase.name else ""
    return NonFiniteError(
        f"stopped{where} at step {step}: the loss was non-finite (NaN/Inf) {streak} steps in a row "
        f"(updates skipped); {kept}; rerun to resume from it with a lower learning rate (--set {phase.lr_keys}=...) "
        f"or --precision fp32, or check {phase.inputs}"
    )
