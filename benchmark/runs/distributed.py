"""Sharding a run over processes with torch.distributed, as ``torchrun`` launches them.

Under ``torchrun`` (the variables RANK, WORLD_SIZE and LOCAL_RANK are set) robbench joins the
process group (NCCL on GPUs, one device per local rank; gloo on CPUs). A cell's batches are
dealt out in rounds, one batch per rank per round; after each round rank 0 receives every
finished batch and writes it, so only rank 0 touches the run store and a killed rank loses at
most the batch it was computing. Every collective has a timeout (``ROBBENCH_DIST_TIMEOUT``
seconds, default 3600): a rank that dies makes the others stop with an error instead of
waiting for ever. The process group is destroyed at exit, while the interpreter is still whole:
gloo's worker threads torn down during interpreter finalisation abort a finished rank (SIGABRT).
Under plain ``python`` nothing is initialised and :data:`SINGLE` is used.
"""

from __future__ import annotations

import atexit
import datetime
import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

TIMEOUT_VARIABLE = "ROBBENCH_DIST_TIMEOUT"
DEFAULT_TIMEOUT_SECONDS = 3600


class RankFailed(RuntimeError):
    """Another process of the run failed; this one stops too."""


@dataclass(frozen=True)
class World:
    """This process's place among the run's processes."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def sharded(self) -> bool:
        return self.size > 1

    def all_gather(self, value: Any) -> list[Any]:
        """Every rank's ``value``, on every rank (picklable objects)."""
        if not self.sharded:
            return [value]
        out: list[Any] = [None] * self.size
        dist.all_gather_object(out, value)
        return out

    def gather(self, value: Any) -> list[Any] | None:
        """Every rank's ``value`` on rank 0 (None elsewhere)."""
        if not self.sharded:
            return [value]
        out: list[Any] | None = [None] * self.size if self.main else None
        dist.gather_object(value, out, dst=0)
        return out

    def broadcast(self, value: Any) -> Any:
        """Rank 0's ``value`` on every rank."""
        if not self.sharded:
            return value
        box = [value if self.main else None]
        dist.broadcast_object_list(box, src=0)
        return box[0]


SINGLE = World()


def timeout_seconds() -> float:
    text = os.environ.get(TIMEOUT_VARIABLE, str(DEFAULT_TIMEOUT_SECONDS))
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{TIMEOUT_VARIABLE} {text!r} is not a number of seconds") from None
    if not value > 0:
        raise ValueError(f"{TIMEOUT_VARIABLE} {text!r} must be > 0 seconds")
    return value


def launched_world() -> World:
    """The world torchrun describes in the environment, or :data:`SINGLE` outside torchrun."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size <= 1:
        return SINGLE
    return World(int(os.environ["RANK"]), size, int(os.environ.get("LOCAL_RANK", "0")))


def join_world(device: str) -> tuple[World, str]:
    """Join torchrun's process group (once per process) and return the world and this rank's
    device (``cuda:<local rank>`` on GPUs)."""
    world = launched_world()
    if not world.sharded:
        return world, device
    cuda = device.startswith("cuda")
    if cuda:
        torch.cuda.set_device(world.local_rank)
        device = f"cuda:{world.local_rank}"
    if not dist.is_initialized():
        dist.init_process_group("nccl" if cuda else "gloo",
                                timeout=datetime.timedelta(seconds=timeout_seconds()))
        atexit.register(leave_world)
    return world, device


def leave_world() -> None:
    """Destroy the process group, if this process joined one."""
    if dist.is_initialized():
        dist.destroy_process_group()


def round_robin(items: list[Any], world: World) -> list[list[Any]]:
    """``items`` in rounds of one per rank (the last round may be short)."""
    return [items[i : i + world.size] for i in range(0, len(items), world.size)]
