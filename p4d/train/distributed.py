"""Process-group setup for ``torchrun --nproc-per-node K -m p4d.train ...`` (DDP or FSDP2,
:mod:`p4d.train.sharding`) with gloo on CPU and nccl on GPU, one process per device; a plain run is
world size 1 without a process group (FSDP2 in one process gets a group of one)."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from p4d.errors import ConfigError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Dist:
    rank: int
    world_size: int
    local_rank: int
    device: torch.device
    backend: str | None  # None: no process group (world size 1)

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def pick_device(device: str, local_rank: int) -> torch.device:
    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--runtime.device cuda: no CUDA device is available; use --runtime.device cpu")
    if device == "cuda" or (device == "auto" and torch.cuda.is_available()):
        torch.cuda.set_device(local_rank)
        return torch.device("cuda", local_rank)
    return torch.device("cpu")


def world_size() -> int:
    """The number of processes torchrun started (1 without torchrun)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def init_distributed(device: str = "auto", backend: str | None = None, *, group: bool = False) -> Dist:
    """Join the torchrun process group when ``WORLD_SIZE`` > 1 is set; else a single process,
    with a process group of one when ``group`` (FSDP needs one)."""
    world = world_size()
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    dev = pick_device(device, local_rank)
    if world <= 1 and not group:
        return Dist(0, 1, 0, dev, None)
    backend = backend or ("nccl" if dev.type == "cuda" else "gloo")
    if not dist.is_initialized():
        kwargs = {}
        if "MASTER_ADDR" not in os.environ:  # one process without torchrun: a store of its own
            kwargs = dict(init_method=f"tcp://127.0.0.1:{_free_port()}", rank=0, world_size=1)
        dist.init_process_group(backend=backend, device_id=dev if dev.type == "cuda" else None, **kwargs)
    log.info("rank %d/%d on %s (%s)", rank, world, dev, backend)
    return Dist(rank, world, local_rank, dev, backend)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def close_distributed(d: Dist) -> None:
    if d.backend is not None and dist.is_initialized():
        dist.destroy_process_group()


def mean_across(values: dict[str, float], d: Dist) -> dict[str, float]:
    """Average scalar logs over ranks (every rank must call it)."""
    if d.backend is None or not values:
        return values
    keys = sorted(values)
    t = torch.tensor([values[k] for k in keys], dtype=torch.float64, device=d.device)
    dist.all_reduce(t)
    return {k: float(v) / d.world_size for k, v in zip(keys, t.tolist())}


def barrier(d: Dist) -> None:
    if d.backend is not None:
        dist.barrier()
