"""A real tiny-teacher store for the inspect tests, built once per session by p4d.precompute.

Videos: two real H.264 files (34 frames at 12 fps, 96x64; 2 clips each under --policy stride)
and one file of garbage bytes (its clip is recorded as failed). 5 clips, 2 per shard:
clip 0 failed (bad.mp4), clips 1-2 good0.mp4, clips 3-4 good1.mp4.
"""

from pathlib import Path

import pytest

from p4d.video import write_synthetic_video

FPS = 12
FRAMES = 34


@pytest.fixture(scope="session")
def video_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("inspect_videos")
    for i in range(2):
        write_synthetic_video(root / f"good{i}.mp4", num_frames=FRAMES, fps=FPS, size=(96, 64), seed=i)
    (root / "bad.mp4").write_bytes(b"not a video " * 20)
    return root


@pytest.fixture(scope="session")
def store_path(video_dir, tmp_path_factory) -> Path:
    from p4d.precompute.config import PrecomputeConfig
    from p4d.precompute.job import run_precompute

    path = tmp_path_factory.mktemp("inspect_cache") / "cache.zarr"
    run_precompute(PrecomputeConfig(videos=str(video_dir), store=str(path), teacher="tiny", policy="stride",
                                    clips_per_shard=2, batch_size=2, workers=1, device="cpu", progress=False,
                                    student_size=56))  # the tiny student's S (test_compare trains it on this cache)
    return path


@pytest.fixture(scope="session")
def store(store_path):
    from p4d.cache_schema import open_store

    s = open_store(str(store_path))
    assert s.status() == {"pending": 0, "done": 4, "failed": 1, "total": 5}
    return s


@pytest.fixture(scope="session")
def random_store_path(video_dir, tmp_path_factory) -> Path:
    """The same videos through the seeded random teacher (``tiny-random``): the RANDOM TEACHER labels."""
    from p4d.precompute.config import PrecomputeConfig
    from p4d.precompute.job import run_precompute

    path = tmp_path_factory.mktemp("inspect_random_cache") / "cache.zarr"
    run_precompute(PrecomputeConfig(videos=str(video_dir), store=str(path), teacher="tiny-random", policy="stride",
                                    clips_per_shard=2, batch_size=2, workers=1, device="cpu", progress=False))
    return path
