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
