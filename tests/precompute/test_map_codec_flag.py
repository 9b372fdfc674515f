"""`--map-codec`: checked, recorded in the spec, and on resume the store's own unless asked otherwise."""

from __future__ import annotations

import pytest

from p4d.cache_schema import VideoEntry, create_store
from p4d.errors import CacheSchemaError, ConfigError
from p4d.precompute.config import PrecomputeConfig
from p4d.precompute.job import _refuse_other_settings
from p4d.precompute.plan import build_spec

SETTINGS = dict(teacher="tiny", num_frames=16, policy="stride", frame_stride=1,
                modalities=("depth", "flow", "motion", "camray"), codec=None, clips_per_shard=2)


def _store(tmp_path, map_codec):
    video = VideoEntry(path="/v.mp4", size_bytes=1, content_hash="h", fps=24.0, duration=2.0, num_frames=48,
                       width=64, height=48, rotation=0, num_clips=1)
    return create_store(str(tmp_path / "c.zarr"), build_spec(**SETTINGS, map_codec=map_codec), [video])


def test_new_stores_default_to_quant16_and_a_bad_name_is_refused_naming_the_flag():
    assert build_spec(**SETTINGS).map_codec == "quant16"
    assert build_spec(**SETTINGS, map_codec="float16").map_codec == "float16"
    with pytest.raises(ConfigError, match=r"--map-codec 'int8': expected one of float16, quant16"):
        build_spec(**SETTINGS, map_codec="int8")


def test_a_resume_keeps_the_stores_map_codec_unless_the_flag_asks_for_another(tmp_path):
    store = _store(tmp_path, "float16")  # e.g. a store made before map codecs
    cfg = PrecomputeConfig(videos="v", store=store.url, teacher="tiny")
    _refuse_other_settings(cfg, store, build_spec(**SETTINGS))  # no --map-codec: the store's own
    cfg = PrecomputeConfig(videos="v", store=store.url, teacher="tiny", map_codec="quant16")
    with pytest.raises(CacheSchemaError, match=r"map_codec: store has 'float16', requested 'quant16'"):
        _refuse_other_settings(cfg, store, build_spec(**SETTINGS, map_codec="quant16"))


def test_cache_codecs_lists_the_map_codecs_with_their_bounds():
    from typer.testing import CliRunner

    from p4d.cli import app

    out = CliRunner().invoke(app, ["cache", "codecs"]).output
    assert "quant16          (default)" in out and "flow max absolute error 0.0625 px" in out
    assert "depth max relative error 0.0025" in out and "\nfloat16 " in out
