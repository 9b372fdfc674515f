"""What a new user meets on bad input (issue #18): one line that says what to do, before any work starts."""

import importlib.util
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from p4d.cli import app
from p4d.errors import CacheError, ConfigError, MissingDependencyError


def p4d(*args: str) -> subprocess.CompletedProcess:
    """The installed entry point (p4d.cli:main) in a fresh process, as a user runs it."""
    return subprocess.run([sys.executable, "-c", "from p4d.cli import main; main()", *args],
                          capture_output=True, text=True, timeout=120)


def test_store_that_is_a_file_points_at_precompute(tmp_path):
    video = tmp_path / "clip.mp4"
    video.write_bytes(b"\0" * 10)
    result = CliRunner().invoke(app, ["cache", "summary", str(video)])
    assert isinstance(result.exception, CacheError)
    message = str(result.exception)
    assert f"{video} is a file, not a cache store" in message and "p4d precompute" in message
    assert "cache init" not in message


@pytest.mark.skipif(importlib.util.find_spec("s3fs") is not None, reason="s3fs is installed here")
def test_s3_without_s3fs_is_one_line_naming_the_extra():
    proc = p4d("cache", "summary", "s3://bucket/cache.zarr")
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        "error: s3://bucket/cache.zarr: s3:// needs a package that is not installed; pip install 'p4d[s3]'"]


@pytest.mark.skipif(importlib.util.find_spec("gcsfs") is not None, reason="gcsfs is installed here")
def test_gs_without_gcsfs_names_the_gcs_extra():
    result = CliRunner().invoke(app, ["cache", "verify", "gs://bucket/cache.zarr"])
    assert isinstance(result.exception, MissingDependencyError) and "pip install 'p4d[gcs]'" in str(result.exception)


def test_extras_for_the_fsspec_backends_are_declared():
    import configparser
    from pathlib import Path

    cfg = configparser.ConfigParser()
    cfg.read(Path(__file__).parents[1] / "setup.cfg")
    extras = cfg["options.extras_require"]
    assert extras["s3"].split() == ["s3fs"] and extras["gcs"].split() == ["gcsfs"]


def test_memory_url_is_refused_in_one_line():
    proc = p4d("cache", "summary", "memory://cache.zarr")
    assert proc.returncode == 1 and len(proc.stderr.strip().splitlines()) == 1
    assert "memory://cache.zarr: a memory:// store lives inside one Python process" in proc.stderr


def test_precompute_refuses_unknown_policy_and_memory_store_before_any_work(tmp_path):
    # VIDEOS does not exist: a refusal that names --policy proves the flag was checked before the videos were listed
    for args, needle in ((["--policy", "strided"], "--policy: expected uniform | stride, got 'strided'"),
                         ([], "memory:// store lives in one process")):
        store = "memory://c.zarr" if not args else str(tmp_path / "c.zarr")
        result = CliRunner().invoke(app, ["precompute", str(tmp_path / "no-videos"), store, "--teacher", "tiny", *args])
        assert isinstance(result.exception, ConfigError), result.output
        assert needle in str(result.exception)
        assert "dask dashboard" not in result.output
    assert not (tmp_path / "c.zarr").exists()
