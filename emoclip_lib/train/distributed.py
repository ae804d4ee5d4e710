"""Multi-process training with torch's DistributedDataParallel: set-up from torchrun's environment,
seeded samplers, and gathers that let the contrastive loss see the whole global batch.

Gradient scaling: every process computes the SAME loss over the gathered global batch. The backward
of `torch.distributed.nn.functional.all_gather` sums the gradients that all processes send to a
process's own embeddings, so each local embedding receives `world_size` x dL/de; DDP then averages
the parameter gradients over processes (divides by `world_size`). The product is exactly dL/dtheta,
the gradient of one process holding the whole batch: no extra loss scaling is needed.
"""
from __future__ import annotations

import datetime
import os
import warnings
from dataclasses import dataclass, field
from typing import Any, Iterator

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import Dataset
from torch.utils.data.distributed import DistributedSampler

from ..errors import UserError
from ..runtime import resolve_device


@dataclass(frozen=True)
class DistContext:
    """Where this process stands: its rank among `world_size` processes and its device."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    owns_group: bool = False  # True when `init_from_env` created the process group (and must destroy it)

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that writes checkpoints, history and logs."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        """More than one process."""
        return self.world_size > 1


def init_from_env(device: str | torch.device = "cpu", timeout_minutes: float = 120.0) -> DistContext:
    """Join the process group described by torchrun's environment (`RANK`, `WORLD_SIZE`, `LOCAL_RANK`,
    `MASTER_ADDR`, `MASTER_PORT`), or run as a single process when `WORLD_SIZE` is unset or 1.

    An already initialised process group is used as it is. The backend is gloo on CPU and nccl on CUDA;
    a CUDA process uses the GPU `cuda:LOCAL_RANK`.

    Args:
        device: "cpu" or "cuda" (the GPU index is taken from LOCAL_RANK when distributed).
        timeout_minutes: how long a collective may wait for the slowest process (cache building is long).
    """
    dev = resolve_device(device)
    world_env = int(os.environ.get("WORLD_SIZE", "1") or 1)
    if not dist.is_initialized() and world_env <= 1:
        return DistContext(device=dev)
    owns = False
    if not dist.is_initialized():
        for name in ("RANK", "MASTER_ADDR", "MASTER_PORT"):
            if name not in os.environ:
                raise UserError(f"WORLD_SIZE={world_env} but {name} is not set: launch with "
                                f"`torchrun --nproc_per_node N ...`")
        backend = "nccl" if dev.type == "cuda" else "gloo"
        dist.init_process_group(backend, init_method="env://",
                                timeout=datetime.timedelta(minutes=timeout_minutes))
        owns = True
    rank, world = dist.get_rank(), dist.get_world_size()
    local_rank = int(os.environ.get("LOCAL_RANK", rank))
    if dev.type == "cuda":
        dev = torch.device("cuda", local_rank % max(1, torch.cuda.device_count()))
        torch.cuda.set_device(dev)
    return DistContext(rank=rank, world_size=world, local_rank=local_rank, device=dev, owns_group=owns)


def shutdown(ctx: DistContext) -> None:
    """Destroy the process group if `init_from_env` created it.

    Args:
        ctx: the context returned by `init_from_env`.
    """
    if ctx.owns_group and dist.is_initialized():
        dist.destroy_process_group()


def make_sampler(dataset: Dataset, ctx: DistContext, seed: int, shuffle: bool = True) -> DistributedSampler:
    """The seeded epoch order, split across processes (call `set_epoch` every epoch).

    With one process this is the plain seeded permutation. With N processes, process r takes the
    positions r, r + N, r + 2N, ... of the same permutation (padded by repeating its start), so
    batch k of every process together hold exactly positions [k*B, (k+1)*B) of the permutation,
    B = N x per-process batch: the single-process batch k.

    Args:
        dataset: the training dataset.
        ctx: process context.
        seed: shuffling seed (the order of epoch e is seeded by seed + e).
        shuffle: False keeps the dataset order.
    """
    return DistributedSampler(dataset, num_replicas=ctx.world_size, rank=ctx.rank, shuffle=shuffle,
                              seed=int(seed), drop_last=False)


class PositionedSampler(torch.utils.data.Sampler):
    """Wraps a DistributedSampler to yield (dataset index, position in the epoch's global order).

    Positions >= the dataset length are the sampler's padding duplicates; the training loop masks them.
    """

    def __init__(self, sampler: DistributedSampler, ctx: DistContext) -> None:
        """Args:
            sampler: from `make_sampler`.
            ctx: process context (rank and world size give the positions)."""
        self.sampler, self.rank, self.world_size = sampler, ctx.rank, ctx.world_size

    def set_epoch(self, epoch: int) -> None:
        """Args:
            epoch: 0-based epoch (reseeds the order)."""
        self.sampler.set_epoch(epoch)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        for j, index in enumerate(self.sampler):
            yield int(index), self.rank + self.world_size * j

    def __len__(self) -> int:
        return len(self.sampler)


def gather_with_grad(x: torch.Tensor, ctx: DistContext) -> torch.Tensor:
    """Concatenate every process's `x` along dim 0, keeping the autograd graph (see module docstring).

    Args:
        x: (b, ...) local tensor; the same shape on every process.
        ctx: process context.
    Returns:
        (world_size * b, ...) tensor, process 0's rows first.
    """
    if not ctx.distributed:
        return x
    from torch.distributed.nn.functional import all_gather

    with warnings.catch_warnings():  # torch 2.13 marks it deprecated; its replacement is private API
        warnings.simplefilter("ignore", FutureWarning)
        parts = all_gather(x.contiguous())
    return torch.cat(parts, dim=0)


def gather(x: torch.Tensor, ctx: DistContext) -> torch.Tensor:
    """Concatenate every process's `x` along dim 0 (no gradient).

    Args:
        x: (b, ...) local tensor; the same shape on every process.
        ctx: process context.
    """
    if not ctx.distributed:
        return x
    parts = [torch.empty_like(x) for _ in range(ctx.world_size)]
    dist.all_gather(parts, x.contiguous())
    return torch.cat(parts, dim=0)


def gather_objects(obj: Any, ctx: DistContext) -> list[Any]:
    """Every process's picklable `obj`, in rank order.

    Args:
        obj: any picklable object.
        ctx: process context.
    """
    if not ctx.distributed:
        return [obj]
    out: list[Any] = [None] * ctx.world_size
    dist.all_gather_object(out, obj)
    return out


def sum_across(x: torch.Tensor, ctx: DistContext) -> torch.Tensor:
    """Element-wise sum over processes (returns a new tensor).

    Args:
        x: tensor on `ctx.device`.
        ctx: process context.
    """
    out = x.clone()
    if ctx.distributed:
        dist.all_reduce(out)
    return out


def barrier(ctx: DistContext) -> None:
    """Wait for every process.

    Args:
        ctx: process context.
    """
    if ctx.distributed:
        dist.barrier()


def wrap_ddp(module: nn.Module, ctx: DistContext) -> nn.Module:
    """DistributedDataParallel around `module` when distributed, else `module` itself.

    Args:
        module: a module whose forward runs every trainable parameter.
        ctx: process context.
    """
    if not ctx.distributed:
        return module
    from torch.nn.parallel import DistributedDataParallel

    device_ids = [ctx.device.index] if ctx.device.type == "cuda" else None
    return DistributedDataParallel(module, device_ids=device_ids)
