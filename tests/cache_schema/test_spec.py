"""CacheSpec / VideoEntry: validation naming the field, dict round trip, compatibility diff."""

from __future__ import annotations

import json

import pytest

from p4d.cache_schema import DEFAULT_LATENT_CODEC, MODALITIES, CacheSpec, VideoEntry
from p4d.errors import ConfigError

from .conftest import tiny_spec, tiny_videos


def test_defaults_are_the_l4p_shapes():
    s = CacheSpec()
    assert s.taps == (14, 21, 28, 36) and s.modalities == MODALITIES
    assert s.latent_shape == (4, 8, 16, 16, 1408)
    assert s.map_shape("flow") == (16, 224, 224, 2) and s.map_shape("camray") == (16, 16, 16, 6)
    assert s.latent_codec == DEFAULT_LATENT_CODEC
    assert s.spatial["input_size"] == [224, 224] and s.sampling["num_frames"] == 16


@pytest.mark.parametrize("field,value,needle", [
    ("taps", (), "CacheSpec.taps"),
    ("taps", (3, 3), "CacheSpec.taps"),
    ("modalities", ("depth", "normals"), "CacheSpec.modalities"),
    ("latent_dim", 0, "CacheSpec.latent_dim"),
    ("height", 2.5, "CacheSpec.height"),
    ("map_dtype", "int8", "CacheSpec.map_dtype"),
    ("latent_codec", "jpeg", "CacheSpec.latent_codec"),
    ("clips_per_shard", -1, "CacheSpec.clips_per_shard"),
    ("teacher", {"name": "l4p"}, "CacheSpec.teacher"),
    ("sampling", {"num_frames": 8}, "sampling"),
    ("spatial", {"input_size": [1, 2]}, "input_size"),
])
def test_invalid_fields_are_named(field, value, needle):
    with pytest.raises(ConfigError, match=needle) as info:
        tiny_spec(**{field: value})
    assert "expected" in str(info.value) and "got" in str(info.value)


def test_dict_round_trip_through_json():
    s = tiny_spec(teacher={"name": "l4p", "preset": "tiny", "config": {"depth": 2}, "weights_hash": "abc"})
    back = CacheSpec.from_dict(json.loads(json.dumps(s.to_dict())))
    assert back == s and isinstance(back.taps, tuple)


def test_from_dict_refuses_unknown_keys():
    d = tiny_spec().to_dict()
    d["colour"] = "blue"
    with pytest.raises(ConfigError, match="colour"):
        CacheSpec.from_dict(d)


def test_compatible_with_lists_differences():
    a = tiny_spec()
    assert a.compatible_with(tiny_spec()) == []
    b = tiny_spec(taps=(3, 8), teacher={"name": "l4p", "preset": "l4p", "config": {}, "weights_hash": "zz"},
                  sampling={"policy": "stride", "frame_stride": 2})
    diffs = a.compatible_with(b)
    joined = "\n".join(diffs)
    assert "taps" in joined and "teacher.weights_hash" in joined and "sampling.policy" in joined
    assert "sampling.frame_stride" in joined and len(diffs) == 4


def test_video_entry_validation_and_round_trip():
    v = tiny_videos()[0]
    assert VideoEntry.from_dict(json.loads(json.dumps(v.to_dict()))) == v
    with pytest.raises(ConfigError, match="num_clips"):
        VideoEntry(**{**v.to_dict(), "num_clips": -1})
    with pytest.raises(ConfigError, match="rotation"):
        VideoEntry(**{**v.to_dict(), "rotation": 45})
    with pytest.raises(ConfigError, match="fps"):
        VideoEntry(**{**v.to_dict(), "fps": float("nan")})
