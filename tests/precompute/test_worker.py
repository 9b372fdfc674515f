"""Per-clip frame plans inside a shard task, against hand-computed indices."""

import numpy as np

from p4d.cache_schema import CacheSpec, VideoEntry, create_store
from p4d.precompute.worker import clip_frame_plan


def _video(name, frames, clips):
    return VideoEntry(path=name, size_bytes=1, content_hash="", fps=10.0, duration=frames / 10, num_frames=frames,
                      width=8, height=8, rotation=0, num_clips=clips)


def test_clip_frame_plan_maps_clips_to_videos_and_frames(tmp_path):
    spec = CacheSpec(taps=(1, 2, 3, 4), num_frames=4, height=28, width=28, latent_frames=2, latent_height=2,
                     latent_width=2, latent_dim=8, ray_height=2, ray_width=2, clips_per_shard=2,
                     sampling={"num_frames": 4, "policy": "stride", "frame_stride": 2},
                     teacher={"name": "t", "preset": "x", "config": {}, "weights_hash": ""},
                     spatial={}, normalisation={})
    # a: 17 frames, stride 2 -> clips start at 0 and 8; bad: unusable (0 frames) -> 1 clip; b: 8 frames -> 1 clip
    store = create_store(str(tmp_path / "s.zarr"), spec, [_video("a", 17, 2), _video("bad", 0, 1), _video("b", 8, 1)])
    plan = clip_frame_plan(store, [1, 2, 3])
    assert plan[1][0] == 0 and plan[1][1].tolist() == [8, 10, 12, 14]
    assert plan[2][0] == 1 and plan[2][1] == "video bad: no such file"  # planned again: still unusable
    assert plan[3][0] == 2 and plan[3][1].tolist() == [0, 2, 4, 6]
    assert set(clip_frame_plan(store, [0])) == {0} and clip_frame_plan(store, [0])[0][1].dtype == np.int32
