"""A shuffled batch of clips of one shard reads little more than its own bytes (issue 22, defect 6).

Counted at the filesystem: every byte the direct reader asks fsspec (or the OS) for. The bytes
needed are the wanted chunks' sizes, taken from each shard file's index parsed here by hand.
"""

from __future__ import annotations

import os
import uuid

import numpy as np
import pytest
from fsspec.implementations.memory import MemoryFileSystem

from p4d.cache_schema import VideoEntry, create_store, open_store, read_clips, write_shard
from p4d.cache_schema import shard_read
from p4d.cache_schema.read import _direct_reader
from p4d.cache_schema.shard_read import coalesce

from .conftest import tiny_spec
from .helpers import shard_arrays

S = 64  # clips per shard
BATCH = 8


class CountingMemoryFS(MemoryFileSystem):
    """The in-memory filesystem (same files), counting the bytes each read hands back."""

    bytes_read = 0

    def cat_file(self, path, start=None, end=None, **kw):
        data = super().cat_file(path, start=start, end=end, **kw)
        type(self).bytes_read += len(data)
        return data


def _store(url: str):
    spec = tiny_spec(latent_frames=2, latent_height=8, latent_width=8, latent_dim=256, height=64, width=64,
                     clips_per_shard=S)
    video = VideoEntry(path="/videos/long.mp4", size_bytes=1, content_hash="h", fps=24.0, duration=60.0,
                       num_frames=1440, width=64, height=64, rotation=0, num_clips=S)
    store = create_store(url, spec, [video])
    write_shard(store, 0, shard_arrays(store, 0))
    return open_store(url)


def _needed_bytes(fs, store, path: str, rows: np.ndarray) -> int:
    """Sum of the wanted chunks' nbytes, from the shard file's index (last 16 x chunks + 4 bytes)."""
    layout = store.layouts[path]
    per_shard = int(np.prod([s // c for s, c in zip(layout.shards, layout.chunks)]))
    raw = fs.cat_file(store.shard_file(path, 0))
    index = np.frombuffer(raw[-(16 * per_shard + 4):-4], dtype="<u8").reshape(S, -1, 2)
    return int(index[rows, :, 1].sum())


@pytest.fixture
def memory_store():
    url = f"memory://amp-{uuid.uuid4().hex}/cache.zarr"
    yield _store(url)
    MemoryFileSystem().rm(url.split("://", 1)[1].rsplit("/", 1)[0], recursive=True)


@pytest.mark.parametrize("decode", [False, True])
def test_shuffled_batch_of_8_from_a_64_clip_shard_reads_at_most_1_2x_its_bytes(memory_store, decode):
    store = memory_store
    batch = np.random.default_rng(3).permutation(S)[:BATCH]  # spread over the shard, unsorted
    paths = [p for p in store.layouts if p != "latents/f4d_bf16"]  # f4d_bf16: only for fallback clips
    counting = CountingMemoryFS()
    for path in paths:
        fs, arr = _direct_reader(store, path)
        store.__dict__["_direct"][path] = (counting, arr)
    CountingMemoryFS.bytes_read = 0
    got = read_clips(store, batch, decode=decode)
    read = CountingMemoryFS.bytes_read
    needed = sum(_needed_bytes(MemoryFileSystem(), store, p, np.sort(batch)) for p in paths)
    print(f"bytes read {read}, needed {needed}, ratio {read / needed:.3f}")
    assert read / needed <= 1.2, (read, needed)
    assert read >= needed  # every wanted byte was read (and counted)
    truth = read_clips(open_store(store.url), batch, decode=decode)  # a fresh handle, uncounted
    for k in truth:
        np.testing.assert_array_equal(got[k], truth[k])


def test_local_store_shuffled_batch_equals_zarr_and_reads_its_bytes(tmp_path, monkeypatch):
    store = _store(str(tmp_path / "cache.zarr"))
    batch = np.sort(np.random.default_rng(5).permutation(S)[:BATCH])
    preads = []
    real = os.pread
    monkeypatch.setattr(shard_read.os, "pread", lambda fd, n, off: preads.append(n) or real(fd, n, off))
    got = read_clips(store, batch, fields=["f4d", "depth", "flow", "frame_index"], decode=False)
    monkeypatch.undo()
    for name, path in (("f4d", "latents/f4d"), ("depth", "maps/depth"), ("flow", "maps/flow"),
                       ("frame_index", "clips/frame_index")):
        want = np.stack([np.asarray(store.array(path)[int(c)]) for c in batch])
        np.testing.assert_array_equal(got[name], want)
    from fsspec.implementations.local import LocalFileSystem

    paths = ["latents/f4d", "latents/f4d_scale", "latents/f4d_offset", "clips/latent_codec", "maps/depth",
             "maps/flow", "clips/frame_index", "clips/status"]
    needed = sum(_needed_bytes(LocalFileSystem(), store, p, batch) for p in paths if p in store.layouts)
    assert needed <= sum(preads) <= 1.125 * needed


def test_coalesce_by_hand():
    ranges = [(1000, 100), (0, 100), (110, 100)]
    # gap 10 <= 0.125 x 200 joins; gap 790 > 0.125 x 300 does not
    assert coalesce(ranges) == [(0, 210), (1000, 1100)]
    assert coalesce(ranges, max_gap=5) == [(0, 100), (110, 210), (1000, 1100)]
    assert coalesce(ranges, max_gap=float("inf"), slack=float("inf")) == [(0, 1100)]  # the old single span
    assert coalesce([(0, 100), (0, 100), (50, 100)]) == [(0, 150)]  # repeats and overlaps read once


def test_coalesce_never_reads_more_than_1_125x_the_wanted_bytes():
    rng = np.random.default_rng(0)
    for _ in range(200):
        n = int(rng.integers(1, 40))
        ranges = sorted({(int(o), int(s)) for o, s in zip(rng.integers(0, 10_000, n), rng.integers(1, 500, n))})
        spans = coalesce(ranges)
        covered = np.zeros(11_000, bool)
        for o, s in ranges:
            covered[o:o + s] = True
        read = np.zeros(11_000, bool)
        for lo, hi in spans:
            assert not read[lo:hi].any()  # spans are disjoint
            read[lo:hi] = True
        assert (read | ~covered).all()  # every wanted byte is in a span
        assert read.sum() <= 1.125 * covered.sum() + 1e-9
