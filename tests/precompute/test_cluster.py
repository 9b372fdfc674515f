"""The local dask cluster listens on 127.0.0.1 only, pins torch threads per worker, and its workers'
OpenMP threads sleep when idle."""

from urllib.parse import urlparse

from p4d.precompute.cluster import connect


def _omp_wait_policy():
    import os

    return os.environ.get("OMP_WAIT_POLICY")


def _torch_threads():
    import torch

    return torch.get_num_threads()


def test_local_cluster_is_loopback_only_and_sets_torch_threads():
    with connect(None, workers=2, device="cpu", threads_per_worker=1) as client:
        info = client.scheduler_info()
        addresses = [client.scheduler.address, *info["workers"]]
        assert all(urlparse(a).hostname == "127.0.0.1" for a in addresses), addresses
        assert urlparse(client.dashboard_link).hostname == "127.0.0.1"
        threads = client.run(_torch_threads)
        assert len(threads) == 2 and all(t >= 1 for t in threads.values())
        assert set(client.run(_omp_wait_policy).values()) == {"PASSIVE"}  # idle OpenMP threads sleep, not spin
