"""One tiny-teacher cache over real H.264 videos for the p4d.targets tests (float16-zstd codec:
the closest to exact that p4d stores; maps are float16 in every store)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from p4d.video import write_synthetic_video

FRAMES, FPS = 34, 12  # stride policy, N=16, stride 1 -> 2 clips per video


@pytest.fixture(scope="session")
def teacher_cache(tmp_path_factory) -> SimpleNamespace:
    """root/videos/{bad,v0,v1}.mp4 and root/cache.zarr: clips 0 (bad.mp4, failed), 1-2 (v0), 3-4 (v1)."""
    from p4d.precompute.config import PrecomputeConfig
    from p4d.precompute.job import run_precompute

    root = tmp_path_factory.mktemp("targets_cache")
    videos = root / "videos"
    videos.mkdir()
    for i in range(2):
        write_synthetic_video(videos / f"v{i}.mp4", num_frames=FRAMES, fps=FPS, size=(96, 64), seed=i)
    (videos / "bad.mp4").write_text("not a video\n")
    store = root / "cache.zarr"
    run_precompute(PrecomputeConfig(videos=str(videos), store=str(store), teacher="tiny", policy="stride",
                                    codec="float16-zstd", clips_per_shard=2, workers=1, device="cpu", progress=False))
    return SimpleNamespace(root=root, videos=videos, store=str(store))
