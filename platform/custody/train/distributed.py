"""Data parallelism through torchrun: who this process is, and the few collectives the loop needs.

`torchrun --nproc_per_node=N` sets WORLD_SIZE, RANK and LOCAL_RANK; with WORLD_SIZE > 1 the
process group starts on NCCL (GPUs) or gloo (CPUs). One process is the same code path with
world_size 1, where every collective is a no-op.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import sys
from dataclasses import dataclass
from typing import NoReturn

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Distributed:
    rank: int = 0
    local_rank: int = 0
    world_size: int = 1

    @property
    def is_main(self) -> bool:
        """Rank 0 writes checkpoints and calls the hooks (the ledger has one writer)."""
        return self.rank == 0

    def barrier(self) -> None:
        if self.world_size > 1:
            dist.barrier()

    def mean(self, value: torch.Tensor) -> torch.Tensor:
        """Average over ranks, in place (gloo has no AVG, so SUM then divide)."""
        if self.world_size > 1:
            dist.all_reduce(value, op=dist.ReduceOp.SUM)
            value /= self.world_size
        return value

    def sum(self, value: torch.Tensor) -> torch.Tensor:
        if self.world_size > 1:
            dist.all_reduce(value, op=dist.ReduceOp.SUM)
        return value

    def max(self, value: torch.Tensor) -> torch.Tensor:
        if self.world_size > 1:
            dist.all_reduce(value, op=dist.ReduceOp.MAX)
        return value

    def broadcast(self, obj: object) -> object:
        """Rank 0's value on every rank (checkpoint paths and digests)."""
        if self.world_size == 1:
            return obj
        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]


def setup_distributed() -> Distributed:
    """Join the process group torchrun describes (once per process); world_size 1 without torchrun."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return Distributed()
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(local_rank)
        dist.init_process_group(backend=backend)
    return Distributed(rank, local_rank, world_size)


def shutdown_distributed() -> None:
    """Leave the group together: a rank that tears gloo down while a peer is still finishing its last
    send can abort in C++ ("terminate called without an active exception"), so all ranks meet first.
    Then drop what still holds the group while the interpreter is whole: `destroy_process_group`
    only forgets c10d's own references, and a DDP wrapper's reducer, in a reference cycle, would
    otherwise outlive it until interpreter exit, where gloo's threads can abort the same way."""
    if dist.is_initialized():
        if dist.get_world_size() > 1:
            dist.barrier()
        gc.collect()
        dist.destroy_process_group()
        gc.collect()


def exit_rank(code: int) -> NoReturn:
    """End a rank process with `code` once its work is written and the group left: stdio and logging
    are flushed, then the process exits without interpreter finalization, where torch's and gloo's
    C++ objects are torn down in no set order (fresh-clone CI runs saw ranks that had written
    their results abort with SIGABRT after leaving the group)."""
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)
