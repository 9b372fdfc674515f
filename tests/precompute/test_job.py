"""p4d precompute end to end on a real LocalCluster, the tiny teacher and real H.264 files."""

import os
import shutil
import signal
import subprocess
import sys
import time

import dask
import numpy as np
import pytest
import torch

from p4d.cache_schema import open_store, read_clip, verify
from p4d.errors import CacheSchemaError, ClipNotAvailableError
from p4d.heads import load_heads
from p4d.precompute.config import PrecomputeConfig
from p4d.precompute.job import run_precompute
from p4d.teacher import build_teacher
from p4d.video import decode_frames, read_frame_code, write_synthetic_video

from .conftest import FPS

pytestmark = pytest.mark.slow


def _cfg(videos, store, **kw):
    base = dict(videos=str(videos), store=str(store), teacher="tiny", policy="stride", clips_per_shard=3,
                batch_size=2, workers=1, device="cpu", progress=False)
    base.update(kw)
    return PrecomputeConfig(**base)


@pytest.fixture(scope="module")
def finished_store(video_folder, tmp_path_factory):
    store = tmp_path_factory.mktemp("cache") / "cache.zarr"
    report = run_precompute(_cfg(video_folder, store))
    return store, report


def test_every_clip_terminal_bad_videos_recorded(finished_store):
    store_path, report = finished_store
    store = open_store(str(store_path))
    # 2 bad files x 1 clip + 3 good videos x 2 clips, 3 clips per shard
    assert store.num_clips == 8 and store.num_shards == 3
    assert store.status() == {"pending": 0, "done": 6, "failed": 2, "total": 8}
    assert (report.clips_done, report.clips_failed, report.shards_written) == (6, 2, 3)
    reasons = store.failures()
    assert sorted(reasons) == [0, 1]
    assert "bad_empty.mp4" in reasons[0] and "bad_random.mp4" in reasons[1]
    with pytest.raises(ClipNotAvailableError, match="bad_random"):
        read_clip(store, 1)
    assert verify(store).problems == []


def test_cached_targets_match_the_teacher_run_directly(finished_store, video_folder):
    """Independent path: decode the planned frames ourselves, run the tiny teacher in-process."""
    store = open_store(str(finished_store[0]))
    torch.manual_seed(0)
    teacher = build_teacher("tiny", device="cpu").eval()
    for clip_id, (video, first) in {2: ("good0.mp4", 0), 5: ("good1.mp4", 16)}.items():
        got = read_clip(store, clip_id)
        want_index = np.arange(first, first + 16)
        np.testing.assert_array_equal(got["frame_index"], want_index)
        np.testing.assert_allclose(got["timestamp"], want_index / FPS, atol=1e-4)
        clip = decode_frames(video_folder / video, want_index, size=(112, 112))
        assert [read_frame_code(f) for f in decode_frames(video_folder / video, want_index).frames] == list(want_index)
        with torch.inference_mode():
            ref = teacher(torch.from_numpy(clip.frames[None]))
        f4d = ref["f4d"][0].numpy()
        cos = (f4d * got["f4d"]).sum() / (np.linalg.norm(f4d) * np.linalg.norm(got["f4d"]))
        assert cos > 0.999
        for m in ("depth", "flow", "motion", "camray"):
            want = ref[m][0].numpy()
            assert got[m].shape == want.shape
            np.testing.assert_allclose(got[m], want, rtol=2e-3, atol=2e-3 * np.abs(want).max())


def test_stored_heads_rebuild_the_teachers_decoders(finished_store):
    store = open_store(str(finished_store[0]))
    heads = load_heads(store.read_side_file("heads.safetensors"))
    torch.manual_seed(0)
    teacher = build_teacher("tiny", device="cpu").eval()
    f4d = torch.from_numpy(read_clip(store, 3)["f4d"][None])
    with torch.no_grad():
        a, b = heads(f4d), teacher.heads(f4d)
    for m in a:
        torch.testing.assert_close(a[m], b[m])


def test_rerun_skips_complete_shards(finished_store, video_folder):
    store_path, _ = finished_store
    report = run_precompute(_cfg(video_folder, store_path))
    assert report.shards_skipped == 3 and report.shards_written == 0


def test_store_from_another_policy_is_refused(finished_store, video_folder):
    with pytest.raises(CacheSchemaError, match="sampling"):
        run_precompute(_cfg(video_folder, finished_store[0], policy="uniform"))


def test_retry_failed_redoes_shards_with_failed_clips(video_folder, tmp_path):
    videos = tmp_path / "videos"
    shutil.copytree(video_folder, videos)
    store = tmp_path / "cache.zarr"
    assert run_precompute(_cfg(videos, store)).clips_failed == 2
    write_synthetic_video(videos / "bad_random.mp4", num_frames=20, fps=FPS, size=(96, 64), seed=9)  # repaired
    assert run_precompute(_cfg(videos, store)).shards_written == 0  # failed clips are terminal
    retried = run_precompute(_cfg(videos, store, retry_failed=True))
    assert retried.shards_written == 1  # only shard 0 holds failed clips
    st = open_store(str(store))
    assert st.status()["failed"] == 1 and list(st.failures()) == [0]


def test_a_shard_whose_worker_keeps_dying_is_recorded_failed(video_folder, tmp_path):
    def die_on_shard_1(url, shard, job):
        from p4d.precompute.worker import process_shard

        if shard == 1:
            os._exit(13)
        return process_shard(url, shard, job)

    with dask.config.set({"distributed.scheduler.allowed-failures": 1}):
        report = run_precompute(_cfg(video_folder, tmp_path / "c.zarr", retries=0, threads_per_worker=1),
                                shard_fn=die_on_shard_1)
    assert list(report.shards_lost) == [1]
    store = open_store(str(tmp_path / "c.zarr"))
    assert store.status()["pending"] == 0
    lost = store.failures()
    assert all("KilledWorker" in lost[i] for i in store.shard_clips(1))


def test_kill_9_mid_run_then_resume_completes(video_folder, tmp_path):
    store = tmp_path / "cache.zarr"
    cmd = [sys.executable, "-m", "p4d.cli", "precompute", str(video_folder), str(store), "--teacher", "tiny",
           "--policy", "stride", "--clips-per-shard", "1", "--workers", "1", "--threads-per-worker", "1",
           "--device", "cpu"]
    proc = subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline:
            time.sleep(0.2)
            try:
                if open_store(str(store)).status()["done"] + open_store(str(store)).status()["failed"] >= 3:
                    break
            except Exception:  # noqa: BLE001 - the store may not exist yet
                pass
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(30)
    mid = open_store(str(store)).status()
    assert mid["pending"] > 0, "the job finished before it could be killed; the test needs more shards"
    report = run_precompute(_cfg(video_folder, store, clips_per_shard=1))
    final = open_store(str(store))
    assert final.status() == {"pending": 0, "done": 6, "failed": 2, "total": 8}
    assert report.shards_skipped >= 3
    assert verify(final).problems == []
