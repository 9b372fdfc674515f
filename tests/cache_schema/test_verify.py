"""verify: injected NaN, shape drift, missing arrays; failed clips are info, not problems."""

from __future__ import annotations

import numpy as np
import pytest
import zarr

from p4d.cache_schema import check_arrays, open_store, verify
from p4d.errors import CacheSchemaError


def test_clean_store_verifies(filled):
    report = verify(open_store(filled.url))
    assert report.problems == [] and report.ok
    assert report.counts["done"] == 6 and report.counts["failed"] == 1 and report.counts["checked_clips"] == 6
    assert report.info == ["clip 3 (/videos/v1.mp4) failed: decode error: truncated file"]
    assert report.headline().startswith("OK:") and "6 done" in report.headline()


def test_pending_store_has_no_problems(store):
    report = verify(store)
    assert report.problems == [] and report.counts["pending"] == 7 and report.counts["checked_clips"] == 0


def test_injected_nan_in_a_done_clip_is_found(filled):
    quant = zarr.open_array(filled.url, path="maps/depth_quant", mode="r+")  # quant16: a NaN offset decodes to NaN
    row = quant[4]
    row[1, 0] = np.nan
    quant[4] = row
    ts = zarr.open_array(filled.url, path="clips/timestamp", mode="r+")
    ts[6] = np.array([0, np.inf, 0, 0], np.float32)
    report = verify(open_store(filled.url))
    assert sorted(report.problems) == sorted([
        "clip 4 (/videos/v1.mp4): NaN/Inf in maps/depth (decoded) although marked done",
        "clip 6 (/videos/v2.mp4): NaN/Inf in clips/timestamp although marked done",
    ])
    assert report.headline().startswith("2 PROBLEM(S)")


def test_nan_in_float_codec_latents_is_found(tmp_path):
    from p4d.cache_schema import create_store, write_shard

    from .conftest import tiny_spec, tiny_videos
    from .helpers import shard_arrays

    store = create_store(str(tmp_path / "c.zarr"), tiny_spec(latent_codec="bfloat16"), tiny_videos())
    arrays = shard_arrays(store, 0)
    arrays["f4d"][1, 1, 0, 2, 2, 7] = np.nan  # float codecs can store NaN; verify must flag it
    write_shard(store, 0, arrays)
    assert verify(store).problems == ["clip 1 (/videos/v0.mp4): NaN/Inf in latents/f4d (decoded) although marked done"]


def test_shape_drift_is_refused_on_open_and_reported_by_verify(filled):
    root = zarr.open_group(filled.url, mode="r+")
    old = root["maps/motion"]
    root["maps"].create_array("motion", shape=(7, 4, 16, 13, 1), dtype="float16", chunks=(1, 4, 16, 13, 1),
                              dimension_names=old.metadata.dimension_names, overwrite=True)
    with pytest.raises(CacheSchemaError, match=r"maps/motion: shape \(7, 4, 16, 13, 1\), expected \(7, 4, 16, 12, 1\)"):
        open_store(filled.url)
    report = verify(open_store(filled.url, check=False))
    assert any("maps/motion: shape (7, 4, 16, 13, 1)" in p for p in report.problems)
    assert any("maps/motion: chunks" in p for p in report.problems)
    assert not any("NaN" in p for p in report.problems)


def test_dtype_drift_and_missing_array(filled):
    root = zarr.open_group(filled.url, mode="r+")
    root["clips"].create_array("frame_index", shape=(7, 4), dtype="float32", chunks=(1, 4), shards=(2, 4),
                               dimension_names=("clip", "frame"), overwrite=True)
    del root["maps/camray"]
    problems = check_arrays(open_store(filled.url, check=False))
    assert "clips/frame_index: dtype float32, expected int32" in problems
    assert any(p.startswith("missing array maps/camray") for p in problems)
    report = verify(open_store(filled.url, check=False))
    assert len(report.problems) == len(problems)  # nothing else wrong; unreadable arrays are skipped
