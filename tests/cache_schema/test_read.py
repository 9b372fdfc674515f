"""read_clip / read_clips: only done clips, stacked in the asked order, clear errors otherwise."""

from __future__ import annotations

import numpy as np
import pytest

from p4d.cache_schema import open_store, read_clip, read_clips, write_shard
from p4d.errors import ClipNotAvailableError

from .helpers import clip_truth, shard_arrays


def test_read_clips_order_duplicates_and_shapes(filled):
    store = open_store(filled.url)
    s = store.spec
    out = read_clips(store, [5, 0, 5, 2])
    assert out["f4d"].shape == (4,) + s.latent_shape and out["f4d"].dtype == np.float32
    assert out["flow"].shape == (4, 4, 16, 12, 2) and out["camray"].shape == (4, 4, 4, 3, 6)
    assert out["depth"].dtype == np.float32 and out["frame_index"].dtype == np.int32
    np.testing.assert_array_equal(out["video"], [2, 0, 2, 1])
    for row, clip in enumerate([5, 0, 5, 2]):
        np.testing.assert_array_equal(out["frame_index"][row], clip_truth(s, clip)["frame_index"])
    np.testing.assert_array_equal(out["f4d"][0], out["f4d"][2])
    single = read_clip(store, 2)
    np.testing.assert_array_equal(single["f4d"], out["f4d"][3])
    assert single["video"].shape == () and int(single["video"]) == 1


def test_empty_selection(filled):
    out = read_clips(open_store(filled.url), [])
    assert out["f4d"].shape[0] == 0 and out["video"].shape == (0,)


@pytest.mark.parametrize("clip", [-1, 7, 100])
def test_out_of_range(filled, clip):
    with pytest.raises(ClipNotAvailableError, match=r"out of range \[0, 7\)"):
        read_clip(open_store(filled.url), clip)


def test_pending_and_failed_clips_raise(store):
    write_shard(store, 1, shard_arrays(store, 1), failures={3: "video ended early"})
    with pytest.raises(ClipNotAvailableError, match="clip 0 .* pending"):
        read_clip(store, 0)
    with pytest.raises(ClipNotAvailableError, match="clip 3 .* failed: video ended early"):
        read_clips(store, [2, 3])
    assert read_clips(store, [2])["f4d"].shape[0] == 1
    with pytest.raises(ClipNotAvailableError, match="expected an int"):
        read_clip(store, "2")


def test_fields_read_only_what_is_asked(filled):
    """A subset equals the full read, and arrays not asked for are never opened: a torn flow
    shard breaks the full read of clip 1 but not a read of its latents and timestamps."""
    from .test_write import shard_file, truncate

    store = open_store(filled.url)
    full = read_clips(store, [1, 0])
    part = read_clips(store, [1, 0], fields=["f4d", "timestamp"])
    assert list(part) == ["f4d", "timestamp"]
    np.testing.assert_array_equal(part["f4d"], full["f4d"])
    np.testing.assert_array_equal(part["timestamp"], full["timestamp"])
    assert list(read_clips(store, [], fields=["depth"])) == ["depth"]
    truncate(shard_file(filled, "maps/flow", 0), keep=0.7)
    with pytest.raises(ClipNotAvailableError, match="maps/flow of shard 0 is unreadable"):
        read_clip(store, 1)
    assert read_clip(store, 1, fields=["f4d", "timestamp"])["f4d"].shape == store.spec.latent_shape


def test_unknown_field_is_named(filled):
    with pytest.raises(ClipNotAvailableError, match="no field 'normals'; this store has f4d, depth"):
        read_clip(open_store(filled.url), 0, fields=["normals"])
