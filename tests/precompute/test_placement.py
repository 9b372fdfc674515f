"""Device and dtype are decided inside each worker, from the worker's environment, never on the driver."""

import pytest

from p4d.cache_schema import format_summary, open_store
from p4d.errors import ConfigError
from p4d.precompute.config import PrecomputeConfig
from p4d.precompute.job import run_precompute
from p4d.precompute.worker import resolve_device, resolve_dtype
from p4d.video import write_synthetic_video


def test_resolvers_read_the_given_environment():
    assert resolve_device("auto", {"P4D_DEVICE": "cuda:1"}) == "cuda:1"
    assert resolve_device("cpu", {"P4D_DEVICE": "cuda"}) == "cpu"  # an explicit flag wins over the environment
    assert resolve_device("auto", {}) in ("cpu", "cuda")
    assert resolve_dtype("auto", "cuda:0", {}) == "bf16" and resolve_dtype("auto", "cpu", {}) == "fp32"
    assert resolve_dtype("auto", "cpu", {"P4D_DTYPE": "fp16"}) == "fp16"
    with pytest.raises(ConfigError, match="P4D_DEVICE"):
        resolve_device("auto", {"P4D_DEVICE": "tpu"})
    with pytest.raises(ConfigError, match="P4D_DTYPE"):
        resolve_dtype("auto", "cpu", {"P4D_DTYPE": "int4"})


@pytest.mark.slow
def test_the_workers_environment_wins_over_the_drivers(tmp_path, monkeypatch):
    """Workers started with P4D_DEVICE=cpu P4D_DTYPE=bf16; the driver's environment says cuda/fp16
    (a driver that decided would send "cuda" to workers without a GPU, and the job would fail)."""
    from distributed import LocalCluster

    for i in range(2):
        write_synthetic_video(tmp_path / "videos" / f"v{i}.mp4", num_frames=20, fps=12, size=(96, 64), seed=i)
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None,
                      env={"P4D_DEVICE": "cpu", "P4D_DTYPE": "bf16"}) as cluster:
        monkeypatch.setenv("P4D_DEVICE", "cuda")
        monkeypatch.setenv("P4D_DTYPE", "fp16")
        assert resolve_device("auto") == "cuda"  # what the driver would have chosen
        report = run_precompute(PrecomputeConfig(
            videos=str(tmp_path / "videos"), store=str(tmp_path / "c.zarr"), teacher="tiny", clips_per_shard=1,
            batch_size=1, device="auto", dtype="auto", scheduler=cluster.scheduler_address, progress=False))
    assert report.clips_done == 2 and report.shards_written == 2
    assert report.placements() == {("cpu", "bf16", "none"): 2}
    assert "2 on cpu bf16" in report.headline()
    summary = format_summary(open_store(str(tmp_path / "c.zarr")))
    assert "2 shards on cpu bf16 (GPU: none)" in summary
