"""Data-parallel training under ``torchrun``: process group, sharding, gradient averaging.

``torchrun --nproc_per_node N -m tausynth train ...`` sets ``RANK``, ``WORLD_SIZE`` and
``LOCAL_RANK``; :func:`init_distributed` reads them and joins the process group (NCCL on CUDA,
gloo on CPU). Each rank reads its shard of the training split through a
``DistributedSampler`` (re-shuffled per epoch with ``set_epoch``), and only rank 0 logs and writes
files.

Gradients are averaged across ranks with one all-reduce per optimizer step
(:func:`average_gradients`) rather than by wrapping the model in ``DistributedDataParallel``: the
GAN objectives call the same generator several times per step (cycle and identity terms) and
call the discriminators outside ``forward``, which DDP's autograd hooks do not support without
extra constraints. Averaging before ``optimizer.step()`` gives the same update as DDP; it only
gives up DDP's overlap of communication with the backward pass.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import torch
import torch.distributed as dist

__all__ = ["DistContext", "all_reduce_sums", "average_gradients", "broadcast_parameters", "init_distributed"]


@dataclass(frozen=True)
class DistContext:
    """Where this process stands in a (possibly single-process) run."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str | None = None

    @property
    def is_main(self) -> bool:
        """Rank 0: the only process that logs and writes files."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def barrier(self) -> None:
        """Wait for every rank (no-op in a single process)."""
        if self.distributed:
            dist.barrier()


def init_distributed(device_type: str) -> DistContext:
    """Join the process group described by ``torchrun``'s environment, if any.

    Parameters
    ----------
    device_type : {"cpu", "cuda"}
        Selects the backend: NCCL for CUDA, gloo for CPU.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistContext()
    rank = int(os.environ["RANK"])
    local_rank = int(os.environ.get("LOCAL_RANK", rank))
    backend = "nccl" if device_type == "cuda" else "gloo"
    if not dist.is_initialized():
        if device_type == "cuda":
            torch.cuda.set_device(local_rank)
        dist.init_process_group(backend=backend)
    return DistContext(rank=dist.get_rank(), world_size=dist.get_world_size(), local_rank=local_rank, backend=backend)


def shutdown_distributed(ctx: DistContext) -> None:
    """Leave the process group (if this module joined one)."""
    if ctx.distributed and dist.is_initialized():
        dist.destroy_process_group()


def broadcast_parameters(module: torch.nn.Module, ctx: DistContext) -> None:
    """Copy rank 0's parameters and buffers to every rank."""
    if not ctx.distributed:
        return
    for tensor in [*module.parameters(), *module.buffers()]:
        dist.broadcast(tensor.data, src=0)


def average_gradients(params: Iterable[torch.nn.Parameter], ctx: DistContext) -> None:
    """Average ``.grad`` over ranks in one flattened all-reduce (missing grads count as zeros)."""
    if not ctx.distributed:
        return
    params = [p for p in params if p.requires_grad]
    if not params:
        return
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= ctx.world_size
    offset = 0
    for p in params:
        n = p.numel()
        p.grad = flat[offset : offset + n].view_as(p).clone()
        offset += n


def all_reduce_sums(values: Mapping[str, float], ctx: DistContext, device: torch.device) -> dict[str, float]:
    """Sum each value over ranks (used for loss sums and sample counts)."""
    if not ctx.distributed or not values:
        return dict(values)
    keys = sorted(values)
    t = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return dict(zip(keys, t.tolist(), strict=True))
