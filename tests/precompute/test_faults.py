"""Faults around precompute: bad inputs in a folder, a store planned by `p4d cache init`, a kill
while precompute creates the store, two first runs on one new store; real videos, tiny teacher."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from p4d.cache_schema import format_summary, open_store, read_clip, verify
from p4d.precompute.config import PrecomputeConfig
from p4d.precompute.job import run_precompute
from p4d.precompute.plan import build_spec, plan_cache, plan_store
from p4d.precompute.worker import TeacherJob, process_shard
from p4d.teacher.presets import get_preset
from p4d.video import write_synthetic_video

REPO = Path(__file__).resolve().parents[2]
N = 16  # frames per clip of the tiny teacher


def _cfg(videos, store, **kw):
    base = dict(videos=str(videos), store=str(store), teacher="tiny", policy="uniform", clips_per_shard=2,
                batch_size=2, workers=1, device="cpu", progress=False)
    base.update(kw)
    return PrecomputeConfig(**base)


def _truncated(src: Path, dst: Path, fraction: float) -> Path:
    data = src.read_bytes()
    dst.write_bytes(data[: int(len(data) * fraction)])
    return dst


@pytest.fixture(scope="module")
def bad_folder(tmp_path_factory) -> Path:
    """A folder of inputs: one good video, and one of each bad kind the planner must record."""
    root = tmp_path_factory.mktemp("inputs")
    write_synthetic_video(root / "a_good.mp4", num_frames=20, fps=12, size=(96, 64), seed=1)
    (root / "b_link.mp4").symlink_to(root / "gone.mp4")
    (root / "c_folder.mp4").mkdir()
    Image.fromarray(np.full((48, 64, 3), 200, np.uint8)).save(root / "png.png")
    (root / "d_image.mp4").write_bytes((root / "png.png").read_bytes())
    full = write_synthetic_video(root / "full.mkv", num_frames=120, fps=24, size=(64, 48), seed=2)
    _truncated(full, root / "e_truncated.mkv", 0.5)     # about half the frames left: >= N, planned with a warning
    _truncated(full, root / "f_stub.mkv", 0.12)         # a few frames left: < N, fails
    full.unlink()
    (root / "png.png").unlink()
    return root


def test_every_input_in_a_folder_is_planned_and_recorded_with_its_reason(bad_folder, tmp_path):
    spec = build_spec(teacher="tiny", num_frames=N, policy="uniform", frame_stride=1,
                      modalities=("depth", "flow", "motion", "camray"), codec=None, clips_per_shard=2)
    store = plan_store(bad_folder, str(tmp_path / "c.zarr"), spec)
    rows = {Path(v.path).name: v for v in store.videos}
    assert sorted(rows) == ["a_good.mp4", "b_link.mp4", "c_folder.mp4", "d_image.mp4", "e_truncated.mkv", "f_stub.mkv"]
    assert rows["a_good.mp4"].num_frames == 20 and rows["a_good.mp4"].note == ""
    assert rows["b_link.mp4"].num_frames == 0 and "dangling symbolic link" in rows["b_link.mp4"].note
    assert rows["c_folder.mp4"].num_frames == 0 and "found a directory" in rows["c_folder.mp4"].note
    assert rows["d_image.mp4"].num_frames == 0 and "still image" in rows["d_image.mp4"].note
    trunc = rows["e_truncated.mkv"]
    assert N <= trunc.num_frames < 100 and trunc.note.startswith(f"truncated: {trunc.num_frames} of the 120 frames")
    stub = rows["f_stub.mkv"]
    assert stub.num_frames == 0 and "truncated" in stub.note and f"fewer than the N={N} frames" in stub.note
    summary = format_summary(store)
    assert "warnings (1 videos planned from fewer frames than their container declares)" in summary
    assert f"e_truncated.mkv: truncated: {trunc.num_frames} of the 120" in summary

    # the shard tasks record each unusable input failed with the planner's reason, the others done
    job = TeacherJob(preset=get_preset("tiny"), weights=None, seed=0, device="cpu", dtype="fp32", batch_size=2,
                     max_pixels=None)
    for shard in range(store.num_shards):
        process_shard(store.url, shard, job)
    done = open_store(store.url)
    reasons = {Path(done.videos[int(done.array("clips/video")[c])].path).name: r for c, r in done.failures().items()}
    assert sorted(reasons) == ["b_link.mp4", "c_folder.mp4", "d_image.mp4", "f_stub.mkv"]
    for name, reason in reasons.items():
        assert reason == rows[name].note
    assert done.status()["done"] == 2
    e_clip = [c for c in range(done.num_clips) if done.videos[int(done.array("clips/video")[c])].path.endswith("e_truncated.mkv")]
    assert read_clip(done, e_clip[0])["frame_index"].max() == trunc.num_frames - 1  # planned from the frames present
    assert verify(done).ok


@pytest.fixture(scope="module")
def two_videos(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("two")
    for i in range(3):
        write_synthetic_video(root / f"v{i}.mp4", num_frames=20, fps=12, size=(96, 64), seed=i)
    return root


@pytest.mark.slow
def test_a_store_planned_by_cache_init_is_filled_by_precompute(two_videos, tmp_path):
    url = str(tmp_path / "c.zarr")
    planned = plan_cache(two_videos, url, teacher="tiny", num_frames=N, clips_per_shard=2)
    assert planned.spec.teacher["weights_hash"] == ""
    report = run_precompute(_cfg(two_videos, url))
    store = open_store(url)
    assert report.clips_done == 3 and store.status()["done"] == 3
    assert store.spec.teacher["weights_hash"] and verify(store).ok
    assert run_precompute(_cfg(two_videos, url)).shards_skipped == 2  # bound: the rerun matches


_KILL_IN_CREATION = textwrap.dedent("""
    import os, sys
    from p4d.cache_schema import store as s
    from p4d.precompute.config import PrecomputeConfig
    from p4d.precompute.job import run_precompute
    def step(name):
        if name == sys.argv[3]:
            os._exit(137)
    s._creation_step = step
    run_precompute(PrecomputeConfig(videos=sys.argv[1], store=sys.argv[2], teacher="tiny", clips_per_shard=2,
                                    workers=1, device="cpu", progress=False))
    sys.exit(3)
""")


@pytest.mark.slow
@pytest.mark.parametrize("step", ["clips/video"])
def test_a_precompute_killed_while_creating_its_store_is_rerun_to_completion(two_videos, tmp_path, step):
    url = str(tmp_path / "c.zarr")
    proc = subprocess.Popen([sys.executable, "-c", _KILL_IN_CREATION, str(two_videos), url, step],
                            env={**os.environ, "PYTHONPATH": str(REPO)}, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        _, err = proc.communicate(timeout=300)
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # the killed driver's cluster, if it outlived it
        except ProcessLookupError:
            pass
    assert proc.returncode == 137, err[-2000:]
    report = run_precompute(_cfg(two_videos, url))
    store = open_store(url)
    assert report.clips_done == 3 and store.status() == {"pending": 0, "done": 3, "failed": 0, "total": 3}
    report = verify(store)
    assert report.ok and report.video_table_ok
    assert [p.name for p in tmp_path.iterdir()] == ["c.zarr"]


@pytest.mark.slow
def test_two_first_runs_on_one_new_store_both_finish(two_videos, tmp_path):
    url = str(tmp_path / "new" / "c.zarr")
    base = [sys.executable, "-m", "p4d.cli", "precompute", str(two_videos), url, "--teacher", "tiny",
            "--clips-per-shard", "1", "--workers", "1", "--device", "cpu"]
    procs = [subprocess.Popen(base + ["--shards", r], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTHONPATH": str(REPO)}) for r in ("0:2", "2:3")]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err[-2000:]
    store = open_store(url)
    assert store.status() == {"pending": 0, "done": 3, "failed": 0, "total": 3}
    assert verify(store).ok
    assert [p.name for p in Path(url).parent.iterdir()] == ["c.zarr"]
