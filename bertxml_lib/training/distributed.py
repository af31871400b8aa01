"""Notebook 03: multi-process pretraining through `torchrun` and PyTorch DDP (paper 4.2.1 used 4 GPUs).

One process per GPU (NCCL) or per CPU worker (gloo). Every rank builds the same length-bucketed global
batch and takes a deterministic share of its rows (`shard_rows`); the training loss is scaled so that
DDP's gradient average equals the gradient of one process on the whole global batch. Without
`torchrun` (no `WORLD_SIZE` in the environment) everything runs as a single process, rank 0 of 1.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist

from bertxml_lib.core.runtime import get_device


@dataclass(frozen=True)
class DistContext:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """Rank 0 alone writes outputs (checkpoints, the model, curves)."""
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world_size > 1


def init_distributed(device_preference: str = "auto") -> tuple[DistContext, torch.device]:
    """Join the process group `torchrun` describes in the environment, or return a single-process context.

    NCCL when the device is CUDA, gloo on CPU; each rank's device is its local rank's GPU."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    ctx = DistContext(int(os.environ.get("RANK", "0")), world_size, int(os.environ.get("LOCAL_RANK", "0")))
    device = get_device(device_preference)
    if ctx.active and not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return ctx, device


def shard_rows(n_rows: int, ctx: DistContext) -> np.ndarray:
    """Row positions of a global batch that rank `ctx.rank` computes: a stride over the rows.

    Length-bucketed batches are sorted longest first, so a stride (not contiguous blocks) gives each
    rank a near-equal number of tokens. May be empty when the batch has fewer rows than ranks."""
    return np.arange(ctx.rank, n_rows, ctx.world_size, dtype=np.int64)


def all_reduce_sum(values: torch.Tensor, ctx: DistContext) -> torch.Tensor:
    """Sum a tensor over ranks (a no-op for one process)."""
    if not ctx.active:
        return values
    # NCCL reduces CUDA tensors only; gloo reduces CPU tensors.
    device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")
    reduced = values.detach().to(device, copy=True)
    dist.all_reduce(reduced, op=dist.ReduceOp.SUM)
    return reduced.to(values.device)


def gather_objects(obj, ctx: DistContext) -> list:
    """Every rank's `obj` in rank order (e.g. per-rank RNG states for a checkpoint)."""
    if not ctx.active:
        return [obj]
    out = [None] * ctx.world_size
    dist.all_gather_object(out, obj)
    return out


def barrier(ctx: DistContext) -> None:
    if ctx.active:
        dist.barrier()


def shutdown(ctx: DistContext) -> None:
    if ctx.active and dist.is_initialized():
        dist.destroy_process_group()
