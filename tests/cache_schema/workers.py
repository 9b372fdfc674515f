"""Functions run in spawned processes by the cache tests (importable by the children)."""

from __future__ import annotations

from p4d.cache_schema import write_shard

from .helpers import shard_arrays


def write_some_shards(store, shards, barrier) -> None:
    """Write ``shards`` of ``store`` (a pickled CacheStore), all writers starting together."""
    barrier.wait(timeout=60)
    for shard in shards:
        write_shard(store, shard, shard_arrays(store, shard))
