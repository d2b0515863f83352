"""How a training step runs on the device: precision, memory format, optimizer, compile, and
non-finite protection without host synchronisation.

- `ComputeSettings.resolve(run, device)`: how the networks compute, from the run options: the
  precision (autocast dtype), the memory format and the compile switch. On CUDA the defaults are
  bf16 autocast, channels-last, fused Adam and `cudnn.benchmark`. On the CPU they are fp32 and NCHW
  unless asked. `torch.compile` is off unless asked (it pays for long runs, not for short ones).
- `ComputeSettings.run(net, *inputs)`: runs a network under autocast and returns fp32. The networks
  (G, D, VGG, LPIPS) compute in bf16. Losses, EMA and the optimizer state stay in fp32, because the parameters
  stay fp32 under autocast. bf16 has fp32's exponent range, so no loss scaling is needed.
- `adam(...)`: fused Adam where the device has the kernel (CUDA and CPU do). Besides speed, the fused
  kernel takes a `found_inf` flag and then leaves the weights, moments and step count exactly as they
  were. That is the on-device skip `StepGuard` uses.
- `StepGuard`: a non-finite loss (or gradient) skips that update with no host sync. The loss is
  multiplied by 1, or by NaN when it is not finite. So every gradient of a bad step turns NaN,
  also on other DDP ranks after the all-reduce, which keeps all ranks in step. The gradient norm
  then sets the flag for the fused optimizer. Consecutive bad steps are counted on the device; the
  training loop reads the count every `log_every` steps and stops after `max_bad_steps`.
- `LossMeter`: sums the losses of each step on the device; one read (one sync) every N steps gives the
  means of the finite values and the number of skipped steps.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from srpipe.errors import SrpipeError


class NonFiniteError(SrpipeError):
    """Training stopped: too many consecutive steps with a non-finite loss."""


@dataclass(frozen=True)
class ComputeSettings:
    """How the networks of one run compute: precision, memory format, compile (see `resolve`)."""

    device: torch.device
    autocast: torch.dtype | None  # None: plain fp32
    channels_last: bool
    compile: bool

    @classmethod
    def resolve(cls, run, device: torch.device) -> "ComputeSettings":
        """`run.precision` auto|bf16|fp32, `run.channels_last` auto|on|off, `run.compile` bool."""
        cuda = device.type == "cuda"  # the values themselves are checked when `run` is made (RunOptions)
        if run.precision == "bf16" and cuda and not torch.cuda.is_bf16_supported():
            raise SrpipeError("--precision bf16: this GPU has no bf16 support; use --precision fp32")
        bf16 = run.precision == "bf16" or (run.precision == "auto" and cuda and torch.cuda.is_bf16_supported())
        channels_last = run.channels_last == "on" or (run.channels_last == "auto" and cuda)
        if cuda:
            # The convolutions see the same few shapes all run long: let cuDNN time its algorithms once.
            torch.backends.cudnn.benchmark = True
        return cls(device, torch.bfloat16 if bf16 else None, channels_last, bool(run.compile))

    def describe(self) -> str:
        parts = ["bf16 autocast" if self.autocast is torch.bfloat16 else "fp32"]
        if self.channels_last:
            parts.append("channels-last")
        if self.compile:
            parts.append("torch.compile")
        return ", ".join(parts)

    def prepare(self, net: torch.nn.Module) -> torch.nn.Module:
        """Move `net` to the device (channels-last when on). Returns the same module."""
        net = net.to(self.device)
        if self.channels_last:
            net = net.to(memory_format=torch.channels_last)
        return net

    def compiled(self, net: torch.nn.Module) -> torch.nn.Module:
        """`torch.compile(net)` when the switch is on; save `ckpt.unwrap(...)` of the result, never it."""
        return torch.compile(net) if self.compile else net

    def input(self, x: torch.Tensor) -> torch.Tensor:
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def run(self, net, *inputs: torch.Tensor) -> torch.Tensor:
        """`net(*inputs)` under autocast, returned as fp32 (what the fp32 losses take)."""
        if self.autocast is None:
            return net(*inputs)
        with torch.autocast(self.device.type, dtype=self.autocast):
            out = net(*inputs)
        return out.float()


def adam(params, *, lr: float, betas: tuple[float, float], device: torch.device) -> torch.optim.Adam:
    """Adam, fused where the device has the kernel (needed for `StepGuard`'s sync-free skip)."""
    from torch.utils._foreach_utils import _get_fused_kernels_supported_devices

    fused = device.type in _get_fused_kernels_supported_devices()
    return torch.optim.Adam(params, lr=lr, betas=betas, fused=fused or None)


def load_optimizer(opt: torch.optim.Optimizer, state: dict) -> None:
    """Load resume state, keeping this run's fused/foreach choice (`load_state_dict` would take the
    saved one) and the step counters where the fused kernel wants them (on the parameters' device)."""
    chosen = [(g.get("fused"), g.get("foreach")) for g in opt.param_groups]
    opt.load_state_dict(state)
    for g, (fused, foreach) in zip(opt.param_groups, chosen):
        g["fused"], g["foreach"] = fused, foreach
        for p in g["params"]:
            s = opt.state.get(p)
            if fused and s and "step" in s:
                s["step"] = s["step"].to(device=p.device, dtype=torch.float32)


def _fused(opt: torch.optim.Optimizer) -> bool:
    return getattr(opt, "_step_supports_amp_scaling", False) and all(g.get("fused") for g in opt.param_groups)


class StepGuard:
    """Skips updates whose loss or gradients are not finite, counting bad steps on the device.

    Per training step: `begin(D)`, then `backward(loss)` and `step(opt)` for each optimizer, then
    `end()`. Modules given to `begin` get their buffers (batch-norm running statistics and counts,
    which the forward pass updates whatever the optimizer does) put back after a skipped step.
    """

    def __init__(self, device: torch.device):
        self.streak = torch.zeros((), device=device)  # consecutive steps with a skipped update
        self._bad = torch.zeros((), device=device)
        self._kept: list[tuple[torch.Tensor, torch.Tensor]] = []

    def begin(self, *modules: torch.nn.Module) -> None:
        self._bad = torch.zeros_like(self.streak)
        self._kept = [(b, b.clone()) for m in modules for b in m.buffers()]

    @staticmethod
    def backward(loss: torch.Tensor) -> None:
        # x1 for a finite loss (exact), NaN otherwise: a NaN or Inf loss added to finite terms would
        # still give finite gradients. This way the gradient check below sees it, on every rank.
        poison = torch.where(torch.isfinite(loss.detach()), 1.0, math.nan)
        (loss * poison).backward()

    def step(self, opt: torch.optim.Optimizer) -> torch.Tensor:
        """`opt.step()` unless a gradient is non-finite; returns the 0-dim float flag (1: skipped)."""
        grads = [p.grad for g in opt.param_groups for p in g["params"] if p.grad is not None]
        if not grads:
            return torch.zeros_like(self.streak)
        # One fused norm over all gradients: non-finite iff some gradient is (or the norm overflows,
        # i.e. gradients beyond 1e19: an update that would wreck the weights anyway).
        norm = torch.nn.utils.get_total_norm(grads, error_if_nonfinite=False)
        found = (~torch.isfinite(norm)).float()
        if _fused(opt):
            # The GradScaler protocol (torch.amp.GradScaler.step does the same): the fused kernel
            # leaves parameters, moments and step count as they were where found_inf is set.
            opt.grad_scale, opt.found_inf = None, found
            try:
                opt.step()
            finally:
                del opt.grad_scale, opt.found_inf
        elif not bool(found):  # an optimizer without a fused kernel: one host sync per step
            opt.step()
        self._bad = torch.maximum(self._bad, found)
        return found

    def end(self) -> torch.Tensor:
        """Close the step: restore guarded buffers if it was skipped; streak + 1 or 0. Returns the flag."""
        bad = self._bad
        for b, old in self._kept:
            b.copy_(torch.where(bad > 0, old, b))
        self._kept = []
        self.streak = (self.streak + 1) * bad
        return bad


class LossMeter:
    """Per-step losses summed on the device; `read()` (one host sync) returns interval means."""

    def __init__(self):
        self._keys: list[str] | None = None
        self._sum = self._count = self._skipped = None
        self._steps = 0

    def add(self, losses: dict[str, torch.Tensor], skipped: torch.Tensor) -> None:
        if self._keys is None or set(losses) != set(self._keys):
            if self._keys is not None and self._steps:
                raise ValueError(f"loss keys changed within a logging interval: {sorted(losses)} vs {self._keys}")
            self._keys = list(losses)
        v = torch.stack([losses[k].detach().float().reshape(()) for k in self._keys])
        ok = torch.isfinite(v)
        if self._sum is None or not self._steps:
            self._sum, self._count, self._skipped = torch.zeros_like(v), torch.zeros_like(v), torch.zeros_like(skipped)
        self._sum += torch.where(ok, v, 0.0)
        self._count += ok
        self._skipped += skipped
        self._steps += 1

    def read(self, world=None, extra: list[torch.Tensor] = ()) -> tuple[dict[str, float], int, list[float]]:
        """({loss: mean of its finite values, NaN if none}, skipped steps, `extra` values) since the last read.

        With a `world` of several ranks the sums are added over ranks first (so the means are over
        the global batch), and so are the `extra` 0-dim tensors, which come back in the same transfer.
        """
        size = 1 if world is None else world.size
        packed = torch.cat(
            [self._sum, self._count, self._skipped.reshape(1).float()]
            + [e.detach().float().reshape(1).to(self._sum.device) for e in extra]
        )
        if world is not None:
            world.sum_(packed)
        host = packed.tolist()  # the one host sync of a logging interval
        n = len(self._keys)
        means = {k: (host[i] / host[n + i] if host[n + i] > 0 else math.nan) for i, k in enumerate(self._keys)}
        skipped = round(host[2 * n] / size)  # the same on every rank (see StepGuard)
        self._steps = 0
        return means, skipped, host[2 * n + 1 :]
