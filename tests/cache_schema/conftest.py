"""Tiny cache stores for the cache_schema tests (real Zarr v3 stores under tmp_path)."""

from __future__ import annotations

import numpy as np
import pytest

from p4d.cache_schema import CacheSpec, VideoEntry, create_store

from .helpers import clip_truth, shard_arrays  # noqa: F401  (re-exported for tests)


def tiny_spec(**kw) -> CacheSpec:
    base = dict(taps=(3, 7), num_frames=4, height=16, width=12, latent_frames=2, latent_height=4, latent_width=4,
                latent_dim=16, ray_height=4, ray_width=3, clips_per_shard=2)
    base.update(kw)
    return CacheSpec(**base)


def tiny_videos(clips=(2, 3, 2)) -> list[VideoEntry]:
    return [VideoEntry(path=f"/videos/v{i}.mp4", size_bytes=1000 + i, content_hash=f"h{i}", fps=24.0, duration=2.0,
                       num_frames=48, width=64, height=48, rotation=0, num_clips=n) for i, n in enumerate(clips)]


@pytest.fixture
def spec() -> CacheSpec:
    return tiny_spec()


@pytest.fixture
def store(tmp_path, spec):
    """7 clips (videos of 2, 3, 2 clips) in 4 shards of S=2 (the last one short), all pending."""
    return create_store(str(tmp_path / "cache.zarr"), spec, tiny_videos())


@pytest.fixture
def filled(store):
    """The tiny store with every shard written; clip 3 recorded as failed."""
    from p4d.cache_schema import write_shard

    for shard in range(store.num_shards):
        fails = {3: "decode error: truncated file"} if 3 in store.shard_clips(shard) else None
        write_shard(store, shard, shard_arrays(store, shard), failures=fails)
    return store


@pytest.fixture
def rng():
    return np.random.default_rng(0)
