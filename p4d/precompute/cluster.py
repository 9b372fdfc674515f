"""The dask cluster precompute runs on: a local one by default, an existing one when given.

Local: one worker process per GPU (pinned to its GPU by :class:`PinDevice`), else one CPU worker
(or ``--workers``) with torch threads set to its share of the cores. The scheduler, the workers
and the dashboard listen on 127.0.0.1 only. ``--scheduler ADDRESS`` connects to a running
cluster instead (dask-jobqueue on SLURM, dask-kubernetes, or ``dask scheduler`` / ``dask worker``
by hand; see docs/precompute.md).
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator

from distributed.diagnostics.plugin import WorkerPlugin

log = logging.getLogger(__name__)


class PinDevice(WorkerPlugin):
    """Pins each local worker to one GPU (by its index in the cluster) and sets its torch threads.

    The GPU index is kept on the plugin instance in the worker (``worker.plugins[PinDevice.name]``,
    read by :func:`pinned_gpu`), not only as torch's current device: that is per host thread, and
    ``setup`` runs on the worker's event-loop thread while tasks run on its ``Dask-Default-Threads``
    (which would all see cuda:0). Tasks enter ``torch.cuda.device(index)`` themselves
    (:func:`p4d.precompute.worker.on_device`)."""

    name = "p4d-pin-device"

    def __init__(self, gpus: int, threads: int):
        self.gpus, self.threads = gpus, threads
        self.index: int | None = None  # set in the worker by setup: this worker's GPU

    def setup(self, worker) -> None:
        import torch

        torch.set_num_threads(self.threads)
        if self.gpus:
            self.index = int(worker.name) % self.gpus if str(worker.name).isdigit() else 0
            torch.cuda.set_device(self.index)  # this thread's only; tasks pin their own (see the class docstring)
            log.info("worker %s pinned to cuda:%d", worker.name, self.index)


def pinned_gpu() -> int | None:
    """The GPU index :class:`PinDevice` gave the dask worker running this task, from the worker's
    plugin (whatever thread asks); None outside a worker or on a worker without that plugin (an
    external cluster: its worker sees the GPUs its launcher gave it, e.g. CUDA_VISIBLE_DEVICES)."""
    try:
        from distributed import get_worker

        worker = get_worker()
    except (ImportError, ValueError):
        return None
    plugin = worker.plugins.get(PinDevice.name)
    return getattr(plugin, "index", None)


#: Environment of the local workers (a value the user already set is kept): torch's OpenMP threads
#: sleep between parallel regions instead of spinning. A worker's OpenMP threads spent ~15 % of its
#: busy samples spinning inside libgomp between the encode's and the teacher input's small parallel
#: regions (py-spy, issue 23); that CPU is taken from the decode threads and the other processes.
WORKER_ENV = {"OMP_WAIT_POLICY": "PASSIVE"}


def worker_env() -> dict[str, str]:
    return {k: os.environ.get(k, v) for k, v in WORKER_ENV.items()}


def local_cluster_size(workers: int | None, device: str) -> tuple[int, int]:
    """(number of workers, GPUs to pin): one worker per GPU when running on CUDA."""
    import torch

    gpus = torch.cuda.device_count() if device in ("auto", "cuda") else 0
    if gpus:
        return (workers or gpus), gpus
    return (workers or 1), 0


@contextlib.contextmanager
def _workers_ignore_ctrl_c() -> Iterator[None]:
    """Spawn the local workers with SIGINT ignored (inherited by the child processes), so a Ctrl-C
    reaches only the driver, which cancels the work and closes the cluster; no worker tracebacks."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


@contextlib.contextmanager
def connect(scheduler: str | None, *, workers: int | None, device: str, threads_per_worker: int) -> Iterator:
    """Yield a ``distributed.Client``: to ``scheduler`` if given, else to a new local cluster."""
    import dask
    from distributed import Client, LocalCluster

    if scheduler:
        with Client(scheduler) as client:
            yield client
        return
    n, gpus = local_cluster_size(workers, device)
    torch_threads = max(1, (os.cpu_count() or 1) // n)
    dashboard = "127.0.0.1:0"  # loopback only, any free port (dask's default listens on every interface)
    # set before the worker process starts (libgomp reads it once, when torch loads it; a spawned worker
    # may import torch while re-importing the driver's __main__, before a nanny `env` would apply)
    environ = {**dask.config.get("distributed.nanny.pre-spawn-environ", {}), **worker_env()}
    with _workers_ignore_ctrl_c(), dask.config.set({"distributed.nanny.pre-spawn-environ": environ}):
        cluster = LocalCluster(n_workers=n, threads_per_worker=threads_per_worker, processes=True, host="127.0.0.1",
                               dashboard_address=dashboard, silence_logs=logging.ERROR)
    with cluster, Client(cluster) as client:
        client.register_plugin(PinDevice(gpus, torch_threads))
        log.info("local dask cluster: %d workers x %d threads, %d GPUs, scheduler %s", n, threads_per_worker, gpus,
                 cluster.scheduler_address)
        yield client
