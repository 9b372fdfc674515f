"""create_store / open_store / CacheStore: attrs, refusals, version errors, URLs, pickling, side files."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
import zarr

from p4d.cache_schema import SCHEMA_VERSION, create_store, open_store, read_clip, write_shard
from p4d.errors import CacheError, CacheNotFoundError, CacheSchemaError, CacheVersionError, ConfigError

from .conftest import tiny_spec, tiny_videos
from .helpers import clip_truth, shard_arrays


def test_create_plans_clips_video_major_all_pending(store):
    assert store.num_clips == 7 and store.num_shards == 4
    assert [list(store.shard_clips(i)) for i in range(4)] == [[0, 1], [2, 3], [4, 5], [6]]
    np.testing.assert_array_equal(store.array("clips/video")[:], [0, 0, 1, 1, 1, 2, 2])
    assert store.status() == {"pending": 7, "done": 0, "failed": 0, "total": 7}
    assert store.shards_to_do() == [0, 1, 2, 3]
    with pytest.raises(CacheError, match="shard 4"):
        store.shard_clips(4)


def test_root_attrs_record_the_contract(store, spec):
    attrs = zarr.open_group(store.url, mode="r").attrs
    assert attrs["schema_version"] == SCHEMA_VERSION
    assert attrs["spec"] == json.loads(json.dumps(spec.to_dict()))
    assert attrs["num_clips"] == 7 and attrs["num_shards"] == 4 and attrs["flow_frame0_invalid"] is True
    assert attrs["latent_codec"]["name"] == spec.latent_codec and attrs["latent_codec"]["params"]
    assert attrs["taps"] == [3, 7] and "c4d" in attrs["dims"]
    videos = json.loads((store_path(store) / "videos.json").read_text())
    assert [v["num_clips"] for v in videos] == [2, 3, 2] and videos[1]["path"] == "/videos/v1.mp4"


def store_path(store):
    from pathlib import Path

    return Path(store.url)


def test_existing_store_is_refused_unless_overwrite(store, spec):
    with pytest.raises(CacheError, match="--overwrite") as info:
        create_store(store.url, spec, tiny_videos())
    assert store.url in str(info.value)
    again = create_store(store.url, spec, tiny_videos((1,)), overwrite=True)
    assert open_store(again.url).num_clips == 1


def test_non_store_folder_is_never_deleted(tmp_path, spec):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "precious.txt").write_text("keep")
    with pytest.raises(CacheError, match="not a zarr store"):
        create_store(str(tmp_path / "mine"), spec, tiny_videos(), overwrite=True)
    assert (tmp_path / "mine" / "precious.txt").read_text() == "keep"


def test_no_clips_is_refused(tmp_path, spec):
    with pytest.raises(ConfigError, match="at least one planned clip"):
        create_store(str(tmp_path / "c.zarr"), spec, tiny_videos((0, 0)))


def test_open_missing_store(tmp_path):
    with pytest.raises(CacheNotFoundError, match="no cache store") as info:
        open_store(str(tmp_path / "nothing.zarr"))
    assert isinstance(info.value, FileNotFoundError)


def test_open_plain_zarr_group_is_not_a_cache(tmp_path):
    zarr.open_group(str(tmp_path / "g.zarr"), mode="w")
    with pytest.raises(CacheSchemaError, match="not a p4d cache"):
        open_store(str(tmp_path / "g.zarr"))


def test_schema_version_mismatch_says_what_to_do(store):
    zarr.open_group(store.url, mode="r+").attrs["schema_version"] = 0
    with pytest.raises(CacheVersionError) as info:
        open_store(store.url)
    msg = str(info.value)
    assert "schema v0" in msg and f"reads v{SCHEMA_VERSION}" in msg and "p4d precompute VIDEOS NEW_STORE" in msg and "p4d==" in msg


def test_missing_videos_json(store):
    store_path(store).joinpath("videos.json").unlink()
    with pytest.raises(CacheSchemaError, match="videos.json"):
        open_store(store.url)


def test_read_only_handle_refuses_writes(filled):
    ro = open_store(filled.url)
    with pytest.raises(CacheError, match="read-only"):
        write_shard(ro, 0, shard_arrays(ro, 0))


def test_handle_pickles_and_reads_in_a_copy(filled):
    ro = open_store(filled.url)
    read_clip(ro, 0)  # arrays opened in this handle
    copy = pickle.loads(pickle.dumps(ro))
    assert copy._arrays == {} and copy.spec == ro.spec and copy.videos == ro.videos
    np.testing.assert_array_equal(read_clip(copy, 5)["frame_index"], clip_truth(copy.spec, 5)["frame_index"])


@pytest.mark.parametrize("scheme", ["file", "memory"])
def test_fsspec_urls(tmp_path, scheme):
    url = f"file://{tmp_path}/c.zarr" if scheme == "file" else f"memory://p4d-test-{tmp_path.name}/c.zarr"
    spec = tiny_spec()
    store = create_store(url, spec, tiny_videos())
    write_shard(store, 1, shard_arrays(store, 1), failures={3: "bad frame"})
    back = open_store(url)
    assert back.status() == {"pending": 5, "done": 1, "failed": 1, "total": 7}
    assert back.failures() == {3: "bad frame"}
    truth = clip_truth(spec, 2)
    np.testing.assert_array_equal(read_clip(back, 2)["frame_index"], truth["frame_index"])
    back_rw = open_store(url, mode="r+")
    back_rw.write_side_file("heads.safetensors", b"\x00weights")
    assert open_store(url).read_side_file("heads.safetensors") == b"\x00weights"
    if scheme == "file":
        assert (tmp_path / "c.zarr" / "heads.safetensors").read_bytes() == b"\x00weights"


def test_side_files(store):
    store.write_side_file("heads/config.json", b"{}")
    assert store.read_side_file("heads/config.json") == b"{}"
    with pytest.raises(CacheNotFoundError):
        store.read_side_file("absent.bin")
    with pytest.raises(CacheError, match="relative path"):
        store.write_side_file("../escape", b"x")


def test_update_attrs(store):
    store.update_attrs({"heads": {"depth": {"dim": 8}}})
    assert open_store(store.url).attrs["heads"] == {"depth": {"dim": 8}}
    with pytest.raises(CacheError, match="fixed at creation"):
        store.update_attrs({"schema_version": 9})
