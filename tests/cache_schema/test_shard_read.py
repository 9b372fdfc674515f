"""Direct shard-file reads equal zarr's reads of the same arrays, and refuse damaged bytes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from p4d.cache_schema import open_store, read_clips
from p4d.cache_schema.shard_read import read_shard_rows, shard_array
from p4d.cache_schema.store import _fs
from p4d.errors import ClipNotAvailableError

DONE = [0, 1, 2, 4, 5, 6]  # clip 3 failed in the fixture


def test_every_array_equals_zarr(filled):
    store = open_store(filled.url)
    fs, root = _fs(store.url)
    for path in store.layouts:
        if path == "latents/f4d_bf16":  # written only for clips that fail the codec's self-check
            continue
        arr = shard_array(fs, root, path)
        assert arr is not None, path  # every array p4d writes is one the direct reader understands
        for shard in range(store.num_shards):
            clips = [c for c in store.shard_clips(shard) if c in DONE]  # a failed clip has no chunks
            rows = np.asarray(clips) - shard * store.spec.clips_per_shard
            got = read_shard_rows(fs, arr, shard, rows)
            want = np.stack([np.asarray(store.array(path)[c]) for c in clips])
            np.testing.assert_array_equal(got, want)
            assert got.dtype == want.dtype


def test_parts_decode_to_the_float_targets(filled):
    store = open_store(filled.url)
    parts = read_clips(store, DONE, decode=False)
    full = read_clips(store, DONE)
    assert parts["f4d"].dtype == np.int8 and parts["depth"].dtype == np.int16 and parts["depth_quant"].shape == (len(DONE), 2, 1)
    codec = store.spec.latent_codec
    from p4d.cache_schema import LATENT_CODECS

    assert parts["f4d_level"].shape == (len(DONE),) and "f4d_bf16" not in parts  # no clip needed bfloat16
    stored = [p.name for p in LATENT_CODECS[codec].stored_parts(store.spec.latent_codec_version)]
    assert "f4d_outlier_index" in stored  # level 1's outlier tokens come with the parts
    decoded = LATENT_CODECS[codec].decode({k: parts[k] for k in stored})
    np.testing.assert_array_equal(decoded, full["f4d"])
    from p4d.cache_schema.map_codecs import decode_map

    np.testing.assert_array_equal(decode_map("depth", parts["depth"], parts["depth_quant"]), full["depth"])


def _chunk_file(store, path, shard) -> Path:
    return Path(store.shard_file(path, shard))


def test_index_flip_and_truncation_are_errors(filled):
    store = open_store(filled.url)
    f = _chunk_file(store, "maps/depth", 0)
    data = bytearray(f.read_bytes())
    data[-10] ^= 0x01  # inside the index, covered by its crc32c
    f.write_bytes(bytes(data))
    with pytest.raises(ClipNotAvailableError, match="clip 0 .*maps/depth of shard 0 is unreadable.*crc32c"):
        read_clips(open_store(filled.url), [0], fields=["depth"])
    g = _chunk_file(store, "maps/flow", 1)
    g.write_bytes(g.read_bytes()[:100])
    with pytest.raises(ClipNotAvailableError, match="maps/flow of shard 1 is unreadable"):
        read_clips(open_store(filled.url), [2], fields=["flow"])


def test_missing_shard_file_of_a_done_clip_is_an_error_not_a_fill_value(filled):
    store = open_store(filled.url)
    _chunk_file(store, "latents/f4d", 2).unlink()
    with pytest.raises(ClipNotAvailableError, match="clip 4 .*latents/f4d shard file is missing"):
        read_clips(open_store(filled.url), [4], fields=["f4d"])
    # the other shards still read
    assert read_clips(open_store(filled.url), [0, 1], fields=["f4d"])["f4d"].shape[0] == 2
