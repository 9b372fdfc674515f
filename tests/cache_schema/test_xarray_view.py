"""to_xarray: the cache as an xarray.Dataset with coordinates, decoded lazily through dask."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("xarray")

import dask.array as da  # noqa: E402

from p4d.cache_schema import read_clips, to_xarray  # noqa: E402
from p4d.cache_schema import xarray_view  # noqa: E402

from .helpers import clip_truth  # noqa: E402


def test_coordinates_name_clips_frames_and_videos(filled):
    ds = to_xarray(filled)
    assert ds.video.dtype.kind == "U"
    assert list(ds.video.values) == ["/videos/v0.mp4"] * 2 + ["/videos/v1.mp4"] * 3 + ["/videos/v2.mp4"] * 2
    assert list(ds.status.values) == ["done"] * 3 + ["failed"] + ["done"] * 3
    assert list(ds.tap.values) == [3, 7]
    truth = clip_truth(filled.spec, 5)
    np.testing.assert_array_equal(ds.frame_index.sel(clip=5).values, truth["frame_index"])
    np.testing.assert_allclose(ds.timestamp.sel(clip=5).values, truth["timestamp"], rtol=1e-6)


def test_decoded_values_equal_read_clips_and_are_read_lazily(filled, monkeypatch):
    calls = []
    real = xarray_view.read_clips
    monkeypatch.setattr(xarray_view, "read_clips", lambda store, idx, fields: calls.append((list(idx), fields))
                        or real(store, idx, fields=fields))
    ds = to_xarray(filled)
    assert isinstance(ds.f4d.data, da.Array) and ds.f4d.dtype == np.float32 and calls == []   # nothing read yet
    depth = ds.depth.sel(clip=4).values
    assert calls == [([4], ["depth"])]                                                       # one clip, one field
    assert ds.depth.dims == ("clip", "frame", "y", "x") and ds.motion.dims == ("clip", "frame", "y", "x")
    ref = read_clips(filled, [4], fields=["depth", "f4d", "flow"])
    np.testing.assert_array_equal(depth, ref["depth"][0, ..., 0])
    np.testing.assert_array_equal(ds.f4d.sel(clip=4).values, ref["f4d"][0])
    np.testing.assert_array_equal(ds.flow.sel(clip=4).values, ref["flow"][0])
    # against the written truth: quant16 depth is within its stated 0.25 % relative bound
    np.testing.assert_allclose(depth, clip_truth(filled.spec, 4)["depth"][..., 0], rtol=0.0025)
    assert np.isnan(ds.depth.sel(clip=3).values).all()                                       # the failed clip


def test_stored_arrays_without_decoding(filled):
    ds = to_xarray(filled, decode=False)
    assert ds.depth.dtype == np.int16 and ds.f4d.dtype == np.int8 and "f4d_scale" in ds and "depth_quant" in ds
    assert ds.depth.dims == ("clip", "frame", "y", "x")
    np.testing.assert_array_equal(ds.f4d.sel(clip=2).values, read_clips(filled, [2], fields=["f4d"], decode=False)["f4d"][0])
