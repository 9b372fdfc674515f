"""Each local worker runs the teacher on the GPU PinDevice gave it, whichever thread runs the task.

CUDA is mocked (no GPU here) with torch's real semantics that matter: the current device is per
host thread (a threading.local), and the plugin's setup runs on another thread than the tasks.
The workers run in this process (processes=False), so the mock reaches them, and a module-level
"current GPU" would be shared by both workers: the index can only come from each worker's plugin.
"""

import threading
from types import SimpleNamespace

import torch

from p4d.precompute.cluster import PinDevice
from p4d.precompute.worker import TeacherJob, on_device, worker_placement
from p4d.teacher import get_preset


class FakeCuda:
    """torch.cuda's device bookkeeping for 2 fake GPUs: a per-thread current device, default 0."""

    def __init__(self):
        self.local = threading.local()
        self.setup_threads: list[str] = []

    def current_device(self) -> int:
        return getattr(self.local, "index", 0)

    def set_device(self, index) -> None:
        self.local.index = torch.device("cuda", index).index if isinstance(index, int) else torch.device(index).index
        self.setup_threads.append(threading.current_thread().name)

    def install(self, monkeypatch) -> None:
        monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
        monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
        monkeypatch.setattr(torch.cuda, "current_device", self.current_device)
        monkeypatch.setattr(torch.cuda, "set_device", self.set_device)
        monkeypatch.setattr(torch.cuda, "get_device_name", lambda i=None: f"Fake GPU {i}")
        monkeypatch.setattr(torch.cuda, "get_device_properties",
                            lambda i: SimpleNamespace(uuid=f"GPU-0000-{i}", name=f"Fake GPU {i}"))

        fake = self

        class Device:  # torch.cuda.device: sets this thread's current device for the block
            def __init__(self, index):
                self.index = index

            def __enter__(self):
                self.prev = fake.current_device()
                fake.local.index = self.index

            def __exit__(self, *exc):
                fake.local.index = self.prev

        monkeypatch.setattr(torch.cuda, "device", Device)


def _placement_in_task(job):
    """What a shard task sees: its placement, and the thread's current device inside on_device."""
    place = worker_placement(job)
    with on_device(place):
        current = torch.cuda.current_device()
    return {"device": place.device, "gpu": place.gpu, "uuid": place.gpu_uuid, "current": current,
            "thread": threading.current_thread().name}


def test_each_task_thread_gets_its_workers_pinned_gpu(monkeypatch):
    from distributed import Client, LocalCluster

    fake = FakeCuda()
    fake.install(monkeypatch)
    job = TeacherJob(preset=get_preset("tiny"), weights=None, seed=0, device="cuda", dtype="auto", batch_size=1,
                     max_pixels=None)
    with LocalCluster(n_workers=2, threads_per_worker=2, processes=False, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        client.register_plugin(PinDevice(gpus=2, threads=1))
        workers = {info["name"]: addr for addr, info in client.scheduler_info()["workers"].items()}
        assert sorted(workers) == [0, 1]
        seen = {name: [client.submit(_placement_in_task, job, workers=[addr], pure=False, key=f"t-{name}-{k}")
                       .result() for k in range(3)]
                for name, addr in workers.items()}
    for name, results in seen.items():
        for got in results:
            assert "Dask-Default-Threads" in got["thread"]  # the probe ran where shard tasks run
            assert got == {**got, "device": f"cuda:{name}", "gpu": f"Fake GPU {name}", "uuid": f"GPU-0000-{name}",
                           "current": name}, got
    assert fake.setup_threads and not any("Dask-Default-Threads" in t for t in fake.setup_threads)


def test_outside_a_worker_the_threads_current_device_is_used(monkeypatch):
    fake = FakeCuda()
    fake.install(monkeypatch)
    job = TeacherJob(preset=get_preset("tiny"), weights=None, seed=0, device="cuda", dtype="auto", batch_size=1,
                     max_pixels=None)
    fake.set_device(1)
    place = worker_placement(job)
    assert (place.device, place.index, place.gpu_uuid, place.dtype) == ("cuda:1", 1, "GPU-0000-1", "bf16")
    assert place.to_dict()["gpu_index"] == 1
    explicit = worker_placement(TeacherJob(**{**job.__dict__, "device": "cuda:0"}))
    assert explicit.device == "cuda:0" and explicit.gpu == "Fake GPU 0"
