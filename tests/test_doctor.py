"""Issue 27: `p4d doctor [STORE]`: versions, devices, extras, chromium, dask and the store's schema on one screen."""

import shutil
from importlib import metadata

import torch
from packaging.requirements import Requirement
from typer.testing import CliRunner

from p4d.cache_schema import create_store, write_shard
from p4d.cache_schema.spec import SCHEMA_VERSION
from p4d.cli import app
from tests.cache_schema.conftest import tiny_spec, tiny_videos
from tests.cache_schema.helpers import shard_arrays


def doctor(*args):
    result = CliRunner().invoke(app, ["doctor", *args])
    assert result.exit_code == 0, result.output + repr(result.exception)
    return result.output


def test_doctor_reports_the_environment_and_a_store(tmp_path):
    store = create_store(str(tmp_path / "cache.zarr"), tiny_spec(), tiny_videos())   # 7 clips, 4 shards of 2
    write_shard(store, 1, shard_arrays(store, 1))
    text = doctor(store.url)
    lines = text.splitlines()
    assert len(lines) <= 45                                               # one screen

    assert f"torch {metadata.version('torch')}" in text and f"zarr {metadata.version('zarr')}" in text
    cuda = [line.strip() for line in lines if line.strip().startswith("cuda")]
    if torch.cuda.is_available():
        assert len(cuda) == torch.cuda.device_count()
    else:
        assert cuda == [f"cuda: not available (torch built with CUDA {torch.version.cuda or 'none'})"]

    # each extra of p4d's metadata, installed exactly when all its distributions are
    for req in metadata.requires("p4d"):
        if 'extra == "' not in req:
            continue
        extra = req.split('extra == "')[1].rstrip('"')
        line = next(line for line in lines if line.split()[:1] == [extra])
        dist = Requirement(req).name  # packaging's parser: names with <, >, ==, [extras] alike
        try:
            metadata.version(dist)
        except metadata.PackageNotFoundError:
            assert "not installed" in line and dist in line, line
    assert "  test         installed:" in text                            # this suite runs: pytest is there

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    chromium_line = next(line for line in lines if line.startswith("chromium:"))
    assert (chromium in chromium_line) if chromium else ("not found" in chromium_line)
    assert f"dask {metadata.version('dask')}, distributed {metadata.version('distributed')}" in text

    assert f"{store.url}: schema v{SCHEMA_VERSION} (current; this p4d writes v{SCHEMA_VERSION})" in text
    assert "7 clips: 2 done, 5 pending, 0 failed; 4 shards of S=2" in text


def test_doctor_reports_a_store_it_cannot_open_in_one_line(tmp_path):
    text = doctor(str(tmp_path / "nope.zarr"))
    store = text.split("store:\n", 1)[1].splitlines()
    assert len(store) == 1 and store[0].startswith(f"  {tmp_path / 'nope.zarr'}: cannot open (no cache store")
    assert "store:" not in doctor()
