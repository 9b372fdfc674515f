"""What a new user meets at `p4d precompute` / `p4d cache`: one-line errors naming the flag, before a cluster starts."""

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

import p4d.precompute.job as job
from p4d.cli import app
from p4d.errors import CacheNotFoundError, ConfigError, MissingDependencyError
from p4d.video import write_synthetic_video

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture()
def no_cluster(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a dask cluster was started")
    monkeypatch.setattr(job, "connect", refuse)


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("videos")
    write_synthetic_video(root / "a.mp4", num_frames=20, fps=12, size=(96, 64), seed=0)
    return root


def run(*args) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args))
    exc = result.exception
    if isinstance(exc, (ConfigError, CacheNotFoundError, MissingDependencyError)):
        return 1, str(exc)
    assert exc is None or isinstance(exc, SystemExit), repr(exc)
    return result.exit_code, result.output


@pytest.mark.parametrize("args,expected", [
    (["--num-frames", "8"], "--num-frames 8: the 'tiny' teacher takes exactly 16"),
    (["--teacher-weights", "nope.ckpt"], "--teacher-weights nope.ckpt: no such file"),
    (["--min-cosine", "0.999;0.99"], "--min-cosine '0.999;0.99': expected MEAN[,WORST]"),
    (["--min-cosine", "0.999,0.99,0.9"], "--min-cosine '0.999,0.99,0.9': expected MEAN[,WORST]"),
    (["--min-cosine", "1.5"], "--min-cosine: min_mean_cosine must lie in [-1, 1], got 1.5"),
    (["--min-cosine", "0.999,nan"], "--min-cosine: min_worst_cosine must lie in [-1, 1], got nan"),
])
def test_bad_flags_are_refused_before_a_cluster_starts(videos, tmp_path, no_cluster, args, expected):
    code, text = run("precompute", str(videos), str(tmp_path / "c.zarr"), "--teacher", "tiny", *args)
    assert code == 1 and expected in text
    assert not (tmp_path / "c.zarr").exists()


def test_l4p_without_weights_requires_random_weights(videos, tmp_path, no_cluster):
    code, text = run("precompute", str(videos), str(tmp_path / "c.zarr"))
    assert code == 1 and "--teacher-weights" in text and "--random-weights" in text and "RANDOMLY" in text
    code, text = run("precompute", str(videos), str(tmp_path / "c.zarr"), "--random-weights",
                     "--teacher-weights", str(videos / "a.mp4"))
    assert code == 1 and "choose one" in text


def test_missing_store_points_at_precompute(tmp_path):
    code, text = run("cache", "summary", str(tmp_path / "missing.zarr"))
    assert "no such folder" in text and "p4d precompute VIDEOS" in text


def test_s3_without_its_backend_names_the_extra_even_where_s3fs_is_installed(monkeypatch):
    import fsspec

    def no_backend(url, **kw):
        raise ImportError("Install s3fs to access S3")
    monkeypatch.setattr(fsspec.core, "url_to_fs", no_backend)
    code, text = run("cache", "summary", "s3://bucket/cache.zarr")
    assert code == 1 and "pip install 'p4d[s3]'" in text


@pytest.mark.slow
def test_ctrl_c_prints_one_p4d_line_and_no_dask_noise(videos, tmp_path):
    """SIGINT as a terminal sends it: to the whole process group, workers included."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "p4d.cli", "precompute", str(videos), str(tmp_path / "c.zarr"),
                             "--teacher", "tiny", "--workers", "1"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.monotonic() + 60
    seen = ""
    while "building the tiny teacher" not in seen and time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        seen += line
    os.killpg(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    err = seen + err
    assert proc.returncode == 130, err
    assert err.count("p4d precompute: stopped by Ctrl-C while") == 1, err
    for noise in ("Traceback", "CancelledError", "resource_tracker", "KeyboardInterrupt"):
        assert noise not in err, err


@pytest.mark.slow
def test_refused_checkpoint_is_one_error_line_without_dask_noise(videos, tmp_path):
    import torch

    evil = tmp_path / "evil.ckpt"
    torch.save({"model": ConfigError("a pickled object")}, evil)   # needs unpickling: refused by weights_only
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, "-m", "p4d.cli", "precompute", str(videos), str(tmp_path / "c.zarr"),
                           "--teacher", "tiny", "--teacher-weights", str(evil), "--workers", "1"],
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and f"teacher weights {evil}: refused" in errors[0]
    for noise in ("Compute Failed", "Traceback", "distributed.worker"):
        assert noise not in proc.stderr, proc.stderr
    assert not (tmp_path / "c.zarr").exists()


def test_after_ctrl_c_a_half_built_dask_future_deletes_silently_and_others_still_speak():
    """A Ctrl-C inside distributed's Future.__init__ left a Future without `_client`; its __del__ then
    printed "Exception ignored ... AttributeError" after p4d's one line (seen in CI). quiet_dask drops
    only errors raised while deleting distributed's objects."""
    code = textwrap.dedent('''
        import gc
        from p4d.precompute.job import quiet_dask

        def make(module):
            def __del__(self):
                raise AttributeError(f"{module}: half-built")
            __del__.__module__ = module
            return type("Future", (), {"__del__": __del__})()

        quiet_dask()
        make("distributed.client"); gc.collect()
        make("p4d.elsewhere"); gc.collect()
    ''')
    proc = subprocess.run([sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": str(ROOT)},
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "distributed.client: half-built" not in proc.stderr
    assert "p4d.elsewhere: half-built" in proc.stderr and "Exception ignored" in proc.stderr
