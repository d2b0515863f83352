"""Training on several GPUs with torchrun and DistributedDataParallel.

`torchrun --nproc-per-node N -m srpipe sr-train ...` starts N processes with WORLD_SIZE, RANK and
LOCAL_RANK set. `init` joins them: NCCL for CUDA, gloo for the CPU. A plain `srpipe ...` (or
WORLD_SIZE 1) is a world of one: no process group, and no NCCL needed.

What makes the result independent of how the batch is split:
- Every rank draws the *global* batch from the same data stream and keeps its slice. A run on N GPUs
  therefore sees the same patches as a run on one, and the data-stream state in a checkpoint is
  the same on every rank.
- Gradients are averaged by DDP. Every loss is a mean over equally sized per-rank slices, so the
  average of the per-rank means is the mean over the global batch.
- The relativistic average of RaGAN (ESRGAN Sec. 3.2, E over the batch) is taken over the global
  batch (`global_mean`). Its gradient flows back to every rank's scores.
- Batch norm in the discriminators normalises with global batch statistics (`SyncBatchNorm2d`).
  This is srpipe's own small version, not torch.nn.SyncBatchNorm, for two reasons: torch's refuses
  CPU tensors, which the gloo test needs, and it syncs with the host in every layer (a boolean mask
  on gathered counts), which would stall every step.

Only rank 0 writes files, logs and progress; the command line mutes the other ranks' output.

Inference (`make-pairs`, `upscale`) under torchrun: `Share` hands each rank every `size`-th file
(round robin) to process on its own device (``cuda:LOCAL_RANK``), and gathers what the ranks did
at the end (`Share.merge`). Each file is computed by the same code as in one
process, so the outputs are byte-identical to a single-process run. An error on one rank is sent
to all of them in that gather, and every rank fails with that rank and file named; nothing is
written by rank 0 after a failure (`pairs.json` is written once, after every rank has finished).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

from srpipe.config import resolve_device
from srpipe.errors import SrpipeError


@dataclass(frozen=True)
class World:
    """This process's place among the training processes (a world of one without torchrun)."""

    rank: int = 0
    size: int = 1
    owns_group: bool = False  # `init` created the process group, so `close` destroys it

    @property
    def main(self) -> bool:
        return self.rank == 0

    def shard(self, n: int, what: str = "batch") -> slice:
        """This rank's rows of a global batch of `n` (equal slices)."""
        if n % self.size:
            raise SrpipeError(
                f"the {what} ({n}) must be divisible by the number of processes ({self.size}); "
                f"change --set batch=... or --nproc-per-node"
            )
        k = n // self.size
        return slice(self.rank * k, (self.rank + 1) * k)

    def wrap(self, net: nn.Module) -> nn.Module:
        """DDP around `net` in a world of more than one; `net` itself otherwise."""
        if self.size == 1:
            return net
        dev = next(net.parameters()).device
        # No buffer sync per forward: the only buffers are batch-norm statistics, equal on all ranks
        # with SyncBatchNorm2d; broadcasting them would add a collective to every forward pass.
        return nn.parallel.DistributedDataParallel(
            net,
            device_ids=[dev.index] if dev.type == "cuda" else None,
            forward_sync_buffers=False,
            gradient_as_bucket_view=True,
        )

    def sum_(self, t: torch.Tensor) -> torch.Tensor:
        """In-place sum over ranks of a (non-differentiable) tensor, e.g. logged losses."""
        if self.size > 1:
            dist.all_reduce(t)
        return t

    def barrier(self) -> None:
        if self.size > 1:
            dist.barrier()

    def close(self) -> None:
        if self.owns_group and dist.is_initialized():
            try:
                # No rank tears the group down while a peer still talks to it (gloo aborts the
                # process with "terminate called without an active exception" otherwise).
                dist.barrier()
            finally:
                dist.destroy_process_group()


def init(device: str) -> tuple[World, torch.device]:
    """(world, device) for this process: joins the torchrun process group when WORLD_SIZE > 1."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size <= 1:
        return World(), resolve_device(device)
    rank, local = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    dev = resolve_device(device)
    if dev.type == "cuda":
        dev = torch.device("cuda", local)  # one GPU per process, chosen by torchrun's local rank
        torch.cuda.set_device(dev)
    owns = not dist.is_initialized()
    if owns:
        dist.init_process_group("nccl" if dev.type == "cuda" else "gloo")
    if dist.get_world_size() != size:
        raise SrpipeError(f"WORLD_SIZE is {size} but the process group has {dist.get_world_size()} processes")
    return World(rank, size, owns), dev


class ShardFailed(SrpipeError):
    """A rank of a sharded inference run failed (raised on every rank, naming the rank and file)."""


class Share:
    """Shares the files of an inference command among the ranks, and their failures.

    `take(items)` yields this rank's share (every `size`-th item, from `rank`) and remembers the
    current one. Used as a context manager around the whole command, an exception on this rank is
    sent to every rank at the next `merge` and raised on each as `ShardFailed`, naming the rank and
    the item. After the `merge`, the results are in; an exception there (e.g. rank 0 writing the
    manifest) is this rank's own. In a world of one everything passes through unchanged::

        with Share(world) as share:
            for f in share.take(files):
                ...
            written, skipped = share.merge(written, skipped)
    """

    def __init__(self, world: World, *, what: str = "file"):
        self.world, self.what = world, what
        self.current = None
        self._merged = False

    @property
    def main(self) -> bool:
        return self.world.main

    def take(self, items) -> "_Taken":
        """This rank's share of `items` (a sized iterable, for progress bars)."""
        return _Taken(self, list(items)[self.world.rank :: self.world.size])

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc is None or self.world.size == 1 or self._merged or not isinstance(exc, Exception):
            return False
        where = "" if self.current is None else f" on {self.what} {getattr(self.current, 'name', self.current)}"
        self._exchange(f"rank {self.world.rank} failed{where}: {exc}", ())  # raises ShardFailed
        return False

    def _exchange(self, failure: str | None, lists) -> list:
        self._merged = True
        gathered: list = [None] * self.world.size
        dist.all_gather_object(gathered, (failure, [list(v) for v in lists]))
        failures = [f for f, _ in gathered if f]
        if failures:
            raise ShardFailed("; ".join(failures))
        return [parts for _, parts in gathered]

    def merge(self, *lists: list) -> tuple[list, ...]:
        """Every rank's lists, concatenated in rank order, on every rank (one collective for all of
        them); raises `ShardFailed` if a rank failed."""
        if self.world.size == 1:
            self._merged = True
            return tuple(list(v) for v in lists)
        per_rank = self._exchange(None, lists)
        return tuple([v for parts in per_rank for v in parts[i]] for i in range(len(lists)))


class _Taken:
    def __init__(self, share: Share, items: list):
        self.share, self.items = share, items

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self):
        for item in self.items:
            self.share.current = item
            yield item
        self.share.current = None


class _SumAcrossRanks(torch.autograd.Function):
    """all_reduce(SUM) whose backward is all_reduce(SUM) of the gradients (each rank's output feeds
    every rank's loss)."""

    @staticmethod
    def forward(ctx, x):
        x = x.clone(memory_format=torch.contiguous_format)
        dist.all_reduce(x)
        return x

    @staticmethod
    def backward(ctx, grad):
        grad = grad.clone(memory_format=torch.contiguous_format)
        dist.all_reduce(grad)
        return grad


def _world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def global_mean(x: torch.Tensor) -> torch.Tensor:
    """Mean of `x` over the global batch (every rank holds an equally sized slice); differentiable."""
    w = _world_size()
    if w == 1:
        return x.mean()
    return _SumAcrossRanks.apply(x.sum().reshape(1))[0] / (x.numel() * w)


class SyncBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm2d that normalises with the statistics of the global batch in training mode.

    Same parameters, buffers and state-dict keys as BatchNorm2d; a plain BatchNorm2d outside a
    process group or in eval mode. Per-rank mean and sum of squared deviations are combined with
    Chan et al.'s parallel formula (no E[x^2] - E[x]^2 cancellation), in fp32 or better, with one
    all-reduce per forward and one per backward.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = _world_size()
        if not self.training or w == 1:
            return super().forward(x)
        self._check_input_dim(x)
        xf = x if x.dtype == torch.float64 else x.float()
        n = x.numel() // x.shape[1]  # values per channel on this rank (equal on all ranks)
        mean_r = xf.mean((0, 2, 3))
        m2_r = (xf - mean_r.view(1, -1, 1, 1)).square().sum((0, 2, 3))
        mine, rank = torch.stack([mean_r, m2_r]), dist.get_rank()
        slots = torch.stack([mine if r == rank else torch.zeros_like(mine) for r in range(w)])
        gathered = _SumAcrossRanks.apply(slots)  # (w, 2, C): every rank's mean and M2 (an all-gather)
        means, m2s = gathered[:, 0], gathered[:, 1]
        mean = means.mean(0)
        m2 = m2s.sum(0) + n * (means - mean).square().sum(0)
        total = n * w
        var = m2 / total
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                f = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
                self.running_mean.lerp_(mean.detach().to(self.running_mean.dtype), f)
                self.running_var.lerp_((m2.detach() / max(total - 1, 1)).to(self.running_var.dtype), f)
        y = (xf - mean.view(1, -1, 1, 1)) * torch.rsqrt(var.view(1, -1, 1, 1) + self.eps)
        if self.affine:
            y = y * self.weight.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)
        return y.to(x.dtype)


def convert_sync_batchnorm(module: nn.Module) -> nn.Module:
    """Replace every BatchNorm2d in `module` by a SyncBatchNorm2d holding the same state (in place)."""
    for name, child in module.named_children():
        if type(child) is nn.BatchNorm2d:
            like = next(iter(child.state_dict().values()), None)  # keep dtype (float64 in tests) and device
            sync = SyncBatchNorm2d(
                child.num_features,
                eps=child.eps,
                momentum=child.momentum,
                affine=child.affine,
                track_running_stats=child.track_running_stats,
                device=None if like is None else like.device,
                dtype=None if like is None else like.dtype,
            )
            sync.load_state_dict(child.state_dict())
            setattr(module, name, sync)
        else:
            convert_sync_batchnorm(child)
    return module
