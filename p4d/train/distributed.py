"""Process-group setup for ``torchrun --nproc-per-node K -m p4d.train ...`` (DDP or FSDP2,
:mod:`p4d.train.sharding`) with gloo on CPU and nccl on GPU, one process per device; a plain run is
world size 1 without a process group (FSDP2 in one process gets a group of one).

Collectives time out after ``--runtime.dist-timeout`` minutes (default 60; torch's own default for
nccl is 10, shorter than rank 0's host build of an 8B student: ≈ 16 GB read and cast to fp32 while
the other ranks wait in the first broadcast). :func:`heartbeat` logs rank 0's progress meanwhile."""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Sequence

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


#: --runtime.dist-timeout default (minutes)
DIST_TIMEOUT_MIN = 60.0


def init_distributed(device: str = "auto", backend: str | None = None, *, group: bool = False,
                     timeout_min: float = DIST_TIMEOUT_MIN) -> Dist:
    """Join the torchrun process group when ``WORLD_SIZE`` > 1 is set; else a single process,
    with a process group of one when ``group`` (FSDP needs one). A collective that waits longer
    than ``timeout_min`` minutes fails (``--runtime.dist-timeout``)."""
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
        dist.init_process_group(backend=backend, device_id=dev if dev.type == "cuda" else None,
                                timeout=timedelta(minutes=timeout_min), **kwargs)
    log.info("rank %d/%d on %s (%s, collectives time out after %g min)", rank, world, dev, backend, timeout_min)
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


def sum_across(values: Sequence[int], d: Dist | None) -> tuple[int, ...]:
    """Integer counts summed over ranks (every rank must call it); ``values`` itself without a group."""
    if d is None or d.backend is None:
        return tuple(int(v) for v in values)
    t = torch.tensor([int(v) for v in values], dtype=torch.int64, device=d.device)
    dist.all_reduce(t)
    return tuple(int(v) for v in t.tolist())


def barrier(d: Dist) -> None:
    if d.backend is not None:
        dist.barrier()


def group_timeout(device: torch.device | str = "cpu") -> timedelta:
    """The timeout of the default process group's backend for ``device`` (what ``init_process_group`` got)."""
    from torch.distributed.distributed_c10d import _get_default_group

    return _get_default_group()._get_backend(torch.device(device)).options._timeout


def _resident_gb() -> float | None:
    try:
        with open("/proc/self/status") as f:
            kb = next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
    except (OSError, StopIteration, ValueError):
        return None
    return kb / 2**20


@contextlib.contextmanager
def heartbeat(what: str, *, every_s: float = 60.0, timeout_min: float | None = None, enabled: bool = True):
    """Log ``what`` with the elapsed time (and resident memory) every ``every_s`` seconds until the
    block ends, then once more with the total: rank 0's progress lines during the host build of a
    large student, while the other ranks wait in a collective for up to ``timeout_min`` minutes."""
    if not enabled:
        yield
        return
    t0 = time.monotonic()
    stop = threading.Event()
    waiting = f"; the other ranks wait up to --runtime.dist-timeout {timeout_min:g} min" if timeout_min else ""

    def beat() -> None:
        while not stop.wait(every_s):
            rss = _resident_gb()
            log.info("%s: %.0f s so far%s%s", what, time.monotonic() - t0,
                     f", resident memory {rss:.1f} GB" if rss is not None else "", waiting)

    log.info("%s%s", what, waiting)
    thread = threading.Thread(target=beat, name="p4d-heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        log.info("%s: done in %.0f s", what, time.monotonic() - t0)
