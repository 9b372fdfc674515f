"""A store written before dpcm-channel format v2 (no level-1 outlier arrays) still reads, exactly as
the code that wrote it read it; writers refuse it. The store in ``data/dpcm_v1.zarr`` was written by
p4d at commit 6bba59c (``data/make_dpcm_v1_store.py`` says how), not rebuilt by today's code."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from p4d.cache_schema import CacheSpec, create_store, open_store, read_clips, verify
from p4d.cache_schema.codecs import LATENT_CODECS
from p4d.errors import CacheVersionError, ConfigError
from p4d.train.device_decode import decode_target_parts

from .conftest import tiny_spec, tiny_videos

DATA = Path(__file__).parent / "data"


@pytest.fixture
def old_store(tmp_path):
    shutil.copytree(DATA / "dpcm_v1.zarr", tmp_path / "v1.zarr")
    return str(tmp_path / "v1.zarr")


def test_a_v1_store_reads_as_it_did(old_store):
    expected = np.load(DATA / "dpcm_v1_expected.npz")
    store = open_store(old_store)
    assert store.spec.latent_codec_version == 1 and "latents/f4d_outlier_index" not in store.layouts
    assert store.array("clips/latent_codec")[:].tolist() == [0, 2, 1, 0]  # levels 0, 2, 1 (old kind), failed
    got = read_clips(store, [0, 1, 2], fields=["f4d"])["f4d"]
    np.testing.assert_array_equal(got.view(np.uint32), expected["f4d"].view(np.uint32))
    parts = read_clips(store, [0, 1, 2], fields=["f4d"], decode=False)
    assert sorted(parts) == sorted(k[len("part_"):] for k in expected.files if k.startswith("part_"))
    for k, v in parts.items():
        np.testing.assert_array_equal(v, expected[f"part_{k}"])
    dev = decode_target_parts(store.spec.latent_codec, {k: torch.from_numpy(v) for k, v in parts.items()})["f4d"]
    np.testing.assert_array_equal(dev.numpy().view(np.uint32), got.view(np.uint32))
    rel = np.linalg.norm(got - expected["truth"]) / np.linalg.norm(expected["truth"])
    assert rel < 0.05  # and it is the data: not merely equal to a stored copy
    report = verify(store)
    assert report.ok, report.problems


def test_writers_refuse_a_v1_store_and_new_stores_are_v2(old_store, tmp_path):
    with pytest.raises(CacheVersionError, match="format v1.*reads but never writes"):
        open_store(old_store, mode="r+")
    with pytest.raises(ConfigError, match="latent_codec_version 1 .* read-only"):
        create_store(str(tmp_path / "old.zarr"), tiny_spec(latent_codec_version=1), tiny_videos())
    new = create_store(str(tmp_path / "new.zarr"), tiny_spec(), tiny_videos())
    assert new.spec.latent_codec_version == LATENT_CODECS["dpcm-channel"].version == 2
    assert open_store(new.url).attrs["latent_codec"]["version"] == 2
    assert "latents/f4d_outlier_value" in new.layouts


def test_spec_versions():
    old = CacheSpec().to_dict()
    del old["latent_codec_version"]
    assert CacheSpec.from_dict(old).latent_codec_version == 1  # a spec written before versions existed
    assert CacheSpec(latent_codec="float16-zstd").latent_codec_version == 1
    for bad in (0, 3, "2", True):
        with pytest.raises(ConfigError, match="latent_codec_version"):
            CacheSpec(latent_codec_version=bad)


def test_summary_names_the_format_version(old_store, tmp_path):
    from p4d.cache_schema import format_summary

    assert "latent codec dpcm-channel format v1 (read-only: this p4d writes v2" in format_summary(open_store(old_store))
    new = create_store(str(tmp_path / "new.zarr"), tiny_spec(), tiny_videos())
    assert "latent codec dpcm-channel format v2:" in format_summary(open_store(new.url))
