"""Layout: chunks = one clip (per tap for latents), shards = S clips everywhere, named dims;
every group opens with plain zarr and with xarray.open_zarr."""

from __future__ import annotations

import numpy as np
import pytest
import zarr

from p4d.cache_schema import array_layouts, create_store, open_store, read_clip

from .conftest import tiny_spec, tiny_videos


def test_chunks_and_shards(spec):
    lay = array_layouts(spec, 7)
    assert lay["latents/f4d"].chunks == (1, 1, 2, 4, 4, 16)
    assert lay["latents/f4d"].shards == (2, 2, 2, 4, 4, 16)
    for path, a in lay.items():
        assert a.chunks[0] == 1 and a.shards[0] == 2, path
        assert a.shape[0] == 7 and len(a.dims) == len(a.shape), path
    assert set(lay) >= {"maps/depth", "maps/flow", "maps/motion", "maps/camray", "clips/frame_index",
                        "clips/timestamp", "clips/video", "clips/status"}


def test_one_size_per_dimension_name_within_each_group(spec):
    for codec in ("float16-zstd", "int8-token", "int8-channel", "dpcm-channel"):
        sizes: dict[tuple[str, str], int] = {}
        for a in array_layouts(tiny_spec(latent_codec=codec), 7).values():
            for name, size in zip(a.dims, a.shape):
                assert sizes.setdefault((a.group, name), size) == size, (codec, a.path, name)


@pytest.mark.parametrize("codec", ["dpcm-channel", "int8-token", "bfloat16"])
def test_every_group_opens_with_zarr_and_xarray(tmp_path, codec):
    xr = pytest.importorskip("xarray")
    url = str(tmp_path / "c.zarr")
    store = create_store(url, tiny_spec(latent_codec=codec), tiny_videos())
    root = zarr.open_group(url, mode="r")
    for group in ("latents", "maps", "clips"):
        g = root[group]
        for name, arr in g.arrays():
            assert arr.metadata.dimension_names == store.layouts[f"{group}/{name}"].dims
        ds = xr.open_zarr(url, group=group, consolidated=False)
        assert ds.sizes["clip"] == 7
        for name, arr in g.arrays():
            assert ds[name].dims == arr.metadata.dimension_names
    ds = xr.open_zarr(url, group="maps", consolidated=False)
    assert ds.sizes["frame"] == 4 and ds.sizes["y"] == 16 and ds.sizes["x"] == 12 and ds.sizes["py"] == 4
    clips = xr.open_zarr(url, group="clips", consolidated=False)
    np.testing.assert_array_equal(clips["video"].values, [0, 0, 1, 1, 1, 2, 2])


def test_all_zero_clip_is_stored_not_missing(tmp_path):
    """write_empty_chunks: an all-zero shard is written to disk and reads back as zeros, not NaN fill."""
    from p4d.cache_schema import write_shard

    store = create_store(str(tmp_path / "c.zarr"), tiny_spec(latent_codec="float16-zstd"), tiny_videos())
    s = store.spec
    arrays = {"f4d": np.zeros((2,) + s.latent_shape, np.float32),
              **{m: np.zeros((2,) + s.map_shape(m), np.float32) for m in s.modalities},
              "frame_index": np.zeros((2, 4), np.int32), "timestamp": np.zeros((2, 4), np.float32)}
    write_shard(store, 0, arrays)
    assert (tmp_path / "c.zarr" / "maps" / "depth" / "c" / "0" / "0" / "0" / "0" / "0").is_file()
    clip = read_clip(open_store(store.url), 1)
    assert not np.isnan(clip["depth"]).any() and (clip["depth"] == 0).all() and (clip["f4d"] == 0).all()
