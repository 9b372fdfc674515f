"""The benchmark's stand-in teacher runs through the real job: real decode, device encode, write."""

import time

import pytest

from p4d.cache_schema import open_store, read_clip
from p4d.precompute.config import PrecomputeConfig
from p4d.precompute.job import run_precompute
from p4d.teacher import get_preset
from p4d.video import write_synthetic_video


@pytest.mark.slow
def test_stand_in_teacher_fills_a_store_with_preset_shaped_targets(tmp_path):
    for i in range(2):
        write_synthetic_video(tmp_path / "videos" / f"v{i}.mp4", num_frames=34, fps=12, size=(96, 64), seed=i)
    rate = 20.0
    t0 = time.perf_counter()
    report = run_precompute(PrecomputeConfig(videos=str(tmp_path / "videos"), store=str(tmp_path / "c.zarr"),
                                             teacher="tiny", policy="stride", clips_per_shard=2, batch_size=2,
                                             workers=1, device="cpu", progress=False, stand_in_rate=rate))
    assert report.clips_done == 4 and report.clips_failed == 0
    assert time.perf_counter() - t0 >= 4 / rate  # each clip took at least 1/R in the stand-in
    store = open_store(str(tmp_path / "c.zarr"))
    n, h, w, c = get_preset("tiny").latent_grid
    assert read_clip(store, 3)["f4d"].shape == (len(store.spec.taps), n, h, w, c)
