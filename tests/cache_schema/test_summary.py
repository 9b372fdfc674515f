"""format_summary: shapes, codecs, status counts, grouped failure reasons, bytes on disk vs raw."""

from __future__ import annotations

import math
from pathlib import Path

from p4d.cache_schema import format_summary, open_store, write_shard

from .helpers import shard_arrays


def du(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def test_summary_shows_the_numbers(filled):
    store = open_store(filled.url)
    text = format_summary(store)
    assert "status: 6 done, 0 pending, 1 failed (total 7)" in text
    assert "latents/f4d" in text and "(7, 2, 2, 4, 4, 16)" in text and "zstd(3)" in text
    assert "maps/flow" in text and "(7, 4, 16, 12, 2)" in text and "blosc(zstd3,shuffle)" in text
    assert "1 x decode error: truncated file  (clips 3)" in text
    # ratio of the maps group, computed here from the files on disk and the spec
    s = store.spec
    raw = 7 * 4 * sum(math.prod(s.map_shape(m)) for m in s.modalities)
    ratio = du(Path(store.url) / "maps") / raw
    assert f"ratio {ratio:.3f}" in text
    lat_raw = 7 * 4 * math.prod(s.latent_shape)
    assert f"ratio {du(Path(store.url) / 'latents') / lat_raw:.3f}" in text


def test_summary_groups_failure_reasons(store):
    write_shard(store, 0, shard_arrays(store, 0), failures={0: "no video stream", 1: "no video stream"})
    write_shard(store, 1, shard_arrays(store, 1), failures={2: "too short"})
    text = format_summary(store)
    assert "2 x no video stream  (clips 0, 1)" in text and "1 x too short  (clips 2)" in text
    assert "status: 1 done, 3 pending, 3 failed (total 7)" in text


def test_summary_names_the_videos_whose_clip_repeats_frames(tmp_path):
    import numpy as np

    from p4d.cache_schema import VideoEntry, create_store
    from p4d.video.sampling import plan_clips

    from .conftest import tiny_spec

    def video(name, frames, note=""):
        return VideoEntry(path=f"/videos/{name}.mp4", size_bytes=1, content_hash=name, fps=24.0, duration=1.0,
                          num_frames=frames, width=64, height=48, rotation=0, num_clips=1, note=note)

    spec = tiny_spec()  # N = 4
    store = create_store(str(tmp_path / "c.zarr"), spec, [video("long", 48), video("short", 3), video("exact", 4),
                                                          video("broken", 0, note="no video stream")])
    # independent truth: the sampler repeats a frame for 3 frames but not for 4
    assert len(np.unique(plan_clips(3, num_frames=4))) < 4 and len(np.unique(plan_clips(4, num_frames=4))) == 4
    text = format_summary(store)
    assert "padded clips: 1 videos have fewer than N=4 frames" in text
    assert "/videos/short.mp4 (3)" in text and "exact.mp4" not in text.split("padded clips:")[1].splitlines()[0]
