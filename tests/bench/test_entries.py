"""Bench entries: registry, metric helpers against hand values, peer formats round trip."""

import numpy as np
import pytest

from p4d.bench.cache import cosine, per_token_cosine_min, rel_err
from p4d.bench.peers import PEER_FORMATS, read_peer, write_peer
from p4d.bench.registry import BENCHMARKS, run_benchmarks
from p4d.errors import ConfigError


def test_cosine_and_relerr_hand_values():
    a = np.array([1.0, 0.0])
    assert cosine(a, np.array([1.0, 1.0])) == pytest.approx(1 / np.sqrt(2))
    assert rel_err(np.array([3.0, 4.0]), np.array([3.0, 0.0])) == pytest.approx(4 / 3)
    tokens = np.array([[1.0, 0.0], [0.0, 1.0]])
    assert per_token_cosine_min(np.array([[1.0, 0.0], [1.0, 1.0]]), tokens) == pytest.approx(1 / np.sqrt(2))


def test_unbuilt_entries_name_their_issue():
    unbuilt = [n for n, target in BENCHMARKS.items() if not target.startswith("p4d.")]
    for name in unbuilt:
        (res,) = run_benchmarks(name, "tiny")
        assert res.status.startswith("not built yet") and "issue #" in res.status


def test_bad_names_and_sizes_are_refused():
    with pytest.raises(ConfigError, match="--size"):
        run_benchmarks("cache", "huge")
    with pytest.raises(ConfigError, match="unknown benchmark"):
        run_benchmarks("disk", "tiny")


@pytest.mark.parametrize("fmt,tol", [("npz-fp16", 1e-3), ("safetensors-bf16", 8e-3), ("npy-fp32", 0.0)])
def test_peer_formats_round_trip(tmp_path, fmt, tol):
    rng = np.random.default_rng(0)
    clip = {"f4d": rng.normal(size=(2, 3, 4, 8)).astype(np.float32), "frame_index": np.arange(4, dtype=np.int32)}
    (path,) = write_peer(tmp_path, fmt, [clip])
    back = read_peer(path, fmt)
    np.testing.assert_array_equal(back["frame_index"], clip["frame_index"])
    np.testing.assert_allclose(back["f4d"], clip["f4d"], rtol=tol, atol=tol)
    assert set(PEER_FORMATS) == {"npz-fp16", "safetensors-bf16", "npy-fp32"}


def test_decompress_ceiling_uses_the_stores_own_codec_settings(tmp_path):
    """The loader's ceiling row decompresses with what the layout declares: zstd(1) for the dpcm
    residuals, blosc zstd level 3 with byte shuffle for the maps, zstd(3) for small arrays."""
    from numcodecs import Blosc, Zstd

    from p4d.bench.loader import _numcodecs_equivalent, decompress_only
    from p4d.bench.synthetic_store import SHAPES, build_store, synthetic_clips

    store = build_store(str(tmp_path / "c.zarr"), SHAPES["tiny"], "dpcm-channel",
                        list(synthetic_clips(SHAPES["tiny"], count=2)))
    f4d, depth = _numcodecs_equivalent(store.array("latents/f4d")), _numcodecs_equivalent(store.array("maps/depth"))
    assert isinstance(f4d, Zstd) and f4d.level == 1
    assert isinstance(depth, Blosc) and (depth.cname, depth.clevel, depth.shuffle) == ("zstd", 3, Blosc.SHUFFLE)
    assert _numcodecs_equivalent(store.array("clips/status")).level == 3
    assert decompress_only(store.url, repeats=1) > 0


def test_loader_bench_deals_shard_local_batches_once_each():
    """Every clip is read exactly once per configuration, p4d batches never straddle a shard,
    and peers read one clip per request."""
    from p4d.bench.loader import BATCH, _items, _split

    for n, per_shard, cores in ((16, 8, 1), (16, 8, 2), (13, 6, 2), (5, 8, 2)):
        shares = _split(n, per_shard, cores)
        assert sorted(c for share in shares for b in share for c in b) == list(range(n))
        for share in shares:
            for batch in _items("p4d (targets to device)", share):
                assert 1 <= len(batch) <= BATCH and len({c // per_shard for c in batch}) == 1
            assert _items("safetensors-bf16", share) == [[c] for b in share for c in b]


def test_loader_bench_throttled_reads_charge_every_byte_and_equal_plain_reads(tmp_path):
    """The bench's storage wrapper serves the coalesced ranges (cat_ranges) with the same bytes
    as a plain read and charges each byte once: the read-amplification row counts what is read."""
    from p4d.bench.loader import ByteCount, ThrottledFS
    from p4d.bench.synthetic_store import SHAPES, build_store, synthetic_clips
    from p4d.cache_schema.read import _direct_reader
    from p4d.cache_schema.shard_read import read_shard_rows

    store = build_store(str(tmp_path / "c.zarr"), SHAPES["tiny"], "dpcm-channel",
                        list(synthetic_clips(SHAPES["tiny"], count=8)))
    fs, arr = _direct_reader(store, "maps/depth")
    rows = np.array([1, 4, 6])
    count = ByteCount()
    got = read_shard_rows(ThrottledFS(fs, count), arr, 0, rows)
    np.testing.assert_array_equal(got, np.stack([np.asarray(store.array("maps/depth")[int(r)]) for r in rows]))
    data = open(store.shard_file("maps/depth", 0), "rb").read()
    index = np.frombuffer(data[-(16 * 8 + 4):-4], "<u8").reshape(8, 2)
    assert count.total == int(index[rows, 1].sum()) + 16 * 8 + 4  # the chunks (gaps too big to join) + index
