"""What precompute stores is never silently wrong: float16 maps cannot hold inf in a done clip
(issue 22 #4), and a store is not continued with another teacher dtype/device class unless
asked (issue 22 #5)."""

import json

import numpy as np
import pytest
import torch

from p4d.cache_schema import format_summary, open_store, read_clip, repair, verify
from p4d.precompute.config import PrecomputeConfig
from p4d.precompute.encode import cast_clamped
from p4d.precompute.job import run_precompute
from p4d.precompute.runtime import MixedRuntimeError, check_shard_runtime, recorded_runtimes
from p4d.video import write_synthetic_video


def test_cast_clamped_counts_exactly_what_overflows_float16():
    x = torch.tensor([[1.5, 65504.0, 65519.0, 65520.0, 7e4, -1e9],   # 65519 rounds to 65504; 65520 to inf
                      [0.0, -2.0, 3.0, 4.0, 5.0, 6.0]])
    y, n = cast_clamped(x, torch.float16)
    assert y.dtype == torch.float16 and n.tolist() == [3, 0]
    assert y[0].tolist() == [1.5, 65504.0, 65504.0, 65504.0, 65504.0, -65504.0]
    assert torch.equal(y[1], x[1].half())
    y32, n32 = cast_clamped(x, torch.float32)  # float32 maps: nothing overflows
    assert torch.equal(y32, x) and n32.tolist() == [0, 0]


def test_a_worker_on_another_runtime_refuses_its_shard():
    expected = {"device": "cpu", "dtype": "fp32"}
    check_shard_runtime("s.zarr", 3, expected, {"device": "cpu", "dtype": "fp32"}, allow_mixed=False)
    check_shard_runtime("s.zarr", 3, expected, {"device": "cuda:1", "dtype": "bf16"}, allow_mixed=True)
    check_shard_runtime("s.zarr", 3, None, {"device": "cuda:1", "dtype": "bf16"}, allow_mixed=False)
    with pytest.raises(MixedRuntimeError, match=r"shard 3: .*teacher device cpu -> cuda, dtype fp32 -> bf16.*"
                                                r"--allow-mixed-precision"):
        check_shard_runtime("s.zarr", 3, expected, {"device": "cuda:1", "dtype": "bf16"}, allow_mixed=False)


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    root = tmp_path_factory.mktemp("safety")
    for i in range(2):  # 34 frames, stride policy: 2 clips per video, 2 clips per shard -> 2 shards
        write_synthetic_video(root / "videos" / f"v{i}.mp4", num_frames=34, fps=12, size=(96, 64), seed=i)
    return root / "videos"


def _cfg(videos, store, **kw):
    return PrecomputeConfig(**{**dict(videos=str(videos), store=str(store), teacher="tiny", policy="stride",
                                      clips_per_shard=2, batch_size=2, workers=1, threads_per_worker=1,
                                      device="cpu", progress=False), **kw})


def _huge_depth_and_nan(url, shard, job):
    """The real shard task with a stand-in teacher output: clip 0's depth holds 1e6 and -3e5 at two
    pixels (finite in float32, past float16's 65504), clip 1's depth a NaN."""
    from p4d.precompute.worker import process_shard, teacher_forward

    def forward(teacher, lock, frames, clip_ids, job, modalities):
        out = teacher_forward(teacher, lock, frames, clip_ids, job, modalities)
        if 0 in clip_ids:
            out["depth"][clip_ids.index(0), 2, 5, 7, 0] = 1e6
            out["depth"][clip_ids.index(0), 4, 1, 3, 0] = -3e5
        if 1 in clip_ids:
            out["depth"][clip_ids.index(1), 0, 0, 0, 0] = float("nan")
        return out

    return process_shard(url, shard, job, forward=forward)


@pytest.mark.slow
def test_float16_overflow_is_clamped_and_recorded_and_nan_fails_the_clip(videos, tmp_path):
    url = str(tmp_path / "c.zarr")  # a float16 store (quant16 stores depth 1e6 within its bound, no clamp)
    report = run_precompute(_cfg(videos, url, shards=(0, 1), map_codec="float16"), shard_fn=_huge_depth_and_nan)
    store = open_store(url, mode="r+")
    assert (report.clips_done, report.clips_failed) == (1, 1)
    depth = read_clip(store, 0)["depth"]
    assert np.isfinite(depth).all()
    assert depth[2, 5, 7, 0] == 65504.0 and depth[4, 1, 3, 0] == -65504.0
    assert store.shard_runs()[0]["clamped"] == {"0": {"depth": 2}}
    assert store.failures()[1] == "non-finite teacher output (NaN in depth)"
    assert verify(store).problems == []
    assert repair(store).before.ok  # nothing for repair to turn pending, so nothing to loop on
    assert "2 values clamped to the float16 range in 1 clips (depth 2;" in format_summary(store)
    # a store written before the fix (inf in a done clip): repair turns it pending, the recompute
    # clamps again and the clip is done; a second repair finds nothing (no loop)
    store.array("maps/depth")[0, 2, 5, 7, 0] = np.inf
    assert repair(store).pending_shards == [0]
    again = run_precompute(_cfg(videos, url, shards=(0, 1), map_codec="float16"), shard_fn=_huge_depth_and_nan)
    assert (again.shards_written, again.clips_done) == (1, 1)
    store = open_store(url, mode="r+")
    assert read_clip(store, 0)["depth"][2, 5, 7, 0] == 65504.0 and repair(store).before.ok


@pytest.mark.slow
def test_a_resume_with_another_dtype_is_refused_unless_allowed(videos, tmp_path, monkeypatch):
    url = str(tmp_path / "c.zarr")
    first = run_precompute(_cfg(videos, url, shards=(0, 1), dtype="fp32"))
    assert first.clips_done == 2
    store = open_store(url)
    assert store.attrs["teacher_runtime"] == [{"device": "cpu", "dtype": "fp32"}]
    monkeypatch.setenv("P4D_DTYPE", "bf16")  # the workers (spawned from here) resolve --dtype auto to bf16
    with pytest.raises(MixedRuntimeError) as refused:
        run_precompute(_cfg(videos, url, dtype="auto"))
    message = str(refused.value)
    assert "\n" not in message and len(message) < 400, message
    assert "dtype fp32 -> bf16" in message and "device" not in message.split("(teacher")[1].split(")")[0]
    assert "--allow-mixed-precision" in message
    assert open_store(url).status()["pending"] == 2  # nothing of the refused run was written
    mixed = run_precompute(_cfg(videos, url, dtype="auto", allow_mixed_precision=True))
    assert mixed.shards_written == 1 and mixed.placements() == {("cpu", "bf16", "none"): 1}
    store = open_store(url)
    assert store.status()["done"] == 4
    assert recorded_runtimes(store) == [{"device": "cpu", "dtype": "fp32"}, {"device": "cpu", "dtype": "bf16"}]
    assert "MIXED teacher runtimes (--allow-mixed-precision): fp32 on cpu, bf16 on cpu" in format_summary(store)
    runs = store.shard_runs()
    assert (runs[0]["dtype"], runs[1]["dtype"]) == ("fp32", "bf16")
    assert json.loads(store.read_side_file("runs/shard-1.json"))["gpu_index"] is None


def test_a_store_with_other_settings_is_refused_before_a_cluster_starts(videos, tmp_path, monkeypatch):
    """issue 27: refused on the driver from the store's attrs, naming only the differing keys (the
    teacher config's differing entries, not both configs whole)."""
    import p4d.precompute.job as job
    from p4d.errors import CacheSchemaError
    from p4d.precompute.plan import plan_cache

    url = str(tmp_path / "c.zarr")
    plan_cache(videos, url, teacher="tiny", policy="stride", clips_per_shard=2)

    def no_cluster(*args, **kwargs):
        raise AssertionError("a cluster was started")

    monkeypatch.setattr(job, "connect", no_cluster)
    with pytest.raises(CacheSchemaError) as refused:
        run_precompute(_cfg(videos, url, taps=(0, 1, 2, 4)))
    message = str(refused.value)
    assert "\n" not in message and len(message) < 400, message
    assert "taps: store has" in message and "teacher.config.taps: store has" in message
    assert "teacher.config.depth" not in message and "teacher.weights_hash" not in message



@pytest.mark.slow
def test_workers_resolving_different_dtypes_write_nothing_mixed(videos, tmp_path):
    """Two workers, one resolving --dtype auto to fp32 and one to bf16: the worker that differs from
    the one the driver asked refuses its shards before computing, so the store holds one dtype."""
    from distributed import Nanny, Scheduler, SpecCluster

    workers = {i: {"cls": Nanny, "options": {"nthreads": 1, "env": {"P4D_DEVICE": "cpu", "P4D_DTYPE": dtype}}}
               for i, dtype in enumerate(("fp32", "bf16"))}
    scheduler = {"cls": Scheduler, "options": {"dashboard_address": None, "host": "127.0.0.1"}}
    url = str(tmp_path / "c.zarr")
    with SpecCluster(workers=workers, scheduler=scheduler) as cluster:
        cfg = _cfg(videos, url, workers=None, scheduler=cluster.scheduler_address, clips_per_shard=1, device="auto",
                   dtype="auto", retries=0)
        with pytest.raises(MixedRuntimeError, match="--allow-mixed-precision"):
            run_precompute(cfg)
    store = open_store(url)
    written = {run["dtype"] for run in store.shard_runs().values()}
    assert len(recorded_runtimes(store)) == 1 and written <= {recorded_runtimes(store)[0]["dtype"]}, written
