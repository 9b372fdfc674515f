"""write_shard: validation, data round trip, failures, two writers, and crashes mid-shard."""

from __future__ import annotations

import multiprocessing
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from p4d.cache_schema import open_store, read_clip, read_clips, verify, write_shard
from p4d.cache_schema.map_codecs import MAP_QUANT
from p4d.errors import CacheSchemaError, ClipNotAvailableError

from .helpers import clip_truth, shard_arrays

TESTS_DIR = str(Path(__file__).resolve().parents[1])


def assert_clip_matches_truth(store, clip: int) -> None:
    got = read_clip(store, clip)
    truth = clip_truth(store.spec, clip)
    np.testing.assert_array_equal(got["frame_index"], truth["frame_index"])
    np.testing.assert_allclose(got["timestamp"], truth["timestamp"], rtol=1e-6)
    for m in store.spec.modalities:  # quant16 storage: each map within its stated bound
        bound = MAP_QUANT[m].bound
        np.testing.assert_array_less(np.abs(got[m] / truth[m] - 1) if m == "depth" else np.abs(got[m] - truth[m]), bound)
    # the store's codec (dpcm-channel, ~3.8 % relative error per channel): well under 6 % overall
    assert np.linalg.norm(got["f4d"] - truth["f4d"]) < 0.06 * np.linalg.norm(truth["f4d"])
    assert int(got["video"]) == int(np.searchsorted(np.cumsum([v.num_clips for v in store.videos]), clip, "right"))


def test_written_clips_read_back(filled):
    store = open_store(filled.url)
    assert store.status() == {"pending": 0, "done": 6, "failed": 1, "total": 7}
    for clip in (0, 2, 4, 6):
        assert_clip_matches_truth(store, clip)


def test_failures_recorded_and_rows_blanked(filled):
    store = open_store(filled.url)
    assert store.failures() == {3: "decode error: truncated file"}
    assert store.shards_to_do() == [] and store.shards_to_do(retry_failed=True) == [1]
    assert store.shards_to_do(force=True) == [0, 1, 2, 3]
    assert (store.array("clips/frame_index")[3] == -1).all()
    assert (store.array("maps/depth")[3] == 0).all()
    with pytest.raises(ClipNotAvailableError, match="decode error: truncated file"):
        read_clip(store, 3)
    write_shard(open_store(filled.url, "r+"), 1, shard_arrays(store, 1))  # retry succeeds
    assert store.failures() == {} and store.status()["done"] == 7
    assert not (Path(store.url) / "failures" / "shard-1.json").exists()


def test_nan_latents_for_integer_codec_must_be_declared_failed(store):
    arrays = shard_arrays(store, 0)
    arrays["f4d"][1, 0, 0, 0, 0, 0] = np.nan
    with pytest.raises(CacheSchemaError, match=r"clips \[1\]"):
        write_shard(store, 0, arrays)
    write_shard(store, 0, arrays, failures={1: "teacher produced NaN"})
    assert list(store.clip_status()[:2]) == [1, 2]


@pytest.mark.parametrize("mutate,needle", [
    (lambda a: a.pop("depth"), "missing \\['depth'\\]"),
    (lambda a: a.update(normals=a["depth"]), "unexpected \\['normals'\\]"),
    (lambda a: a.update(flow=a["flow"][:, :, :-1]), "'flow' has shape"),
    (lambda a: a.update(frame_index=a["frame_index"].astype(np.float32)), "'frame_index' has dtype"),
    (lambda a: a.update(f4d=a["f4d"][:1]), "'f4d' has shape"),
])
def test_bad_arrays_are_refused_naming_the_key(store, mutate, needle):
    arrays = shard_arrays(store, 0)
    mutate(arrays)
    with pytest.raises(CacheSchemaError, match=needle) as info:
        write_shard(store, 0, arrays)
    assert "shard 0" in str(info.value) and "expected" in str(info.value)
    assert store.status()["pending"] == 7  # nothing was marked


def test_failure_outside_the_shard_is_refused(store):
    with pytest.raises(CacheSchemaError, match=r"clip 5.*\[0, 2\)"):
        write_shard(store, 0, shard_arrays(store, 0), failures={5: "x"})


def test_short_last_shard(store):
    write_shard(store, 3, shard_arrays(store, 3))
    assert list(store.clip_status()) == [0, 0, 0, 0, 0, 0, 1]
    assert_clip_matches_truth(store, 6)


# --- two writers, disjoint shards --------------------------------------------------------------


def test_two_processes_write_disjoint_shards(store):
    ctx = multiprocessing.get_context("spawn")
    from .workers import write_some_shards

    barrier = ctx.Barrier(2)
    procs = [ctx.Process(target=write_some_shards, args=(store, shards, barrier)) for shards in ([0, 2], [1, 3])]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
    assert [p.exitcode for p in procs] == [0, 0]
    ro = open_store(store.url)
    assert ro.status() == {"pending": 0, "done": 7, "failed": 0, "total": 7}
    for clip in range(7):
        assert_clip_matches_truth(ro, clip)
    assert verify(ro).problems == []


# --- crashes ---------------------------------------------------------------------------------------

KILLER = """
import os, signal, sys
sys.path.insert(0, {tests!r})
import zarr
from p4d.cache_schema import open_store, write_shard
from cache_schema.helpers import shard_arrays

store = open_store({url!r}, "r+")
arrays = shard_arrays(store, {shard})
if {scramble}:
    arrays["frame_index"] = arrays["frame_index"] + 1000
calls = [0]
original = zarr.Array.__setitem__
def setitem_then_die(self, selection, value):
    calls[0] += 1
    if calls[0] == {kill_at}:
        os.kill(os.getpid(), signal.SIGKILL)  # no cleanup, no exception handlers: a real kill -9
    return original(self, selection, value)
zarr.Array.__setitem__ = setitem_then_die
write_shard(store, {shard}, arrays)
"""


def write_and_kill(store, shard: int, kill_at: int, scramble: bool = False) -> None:
    code = KILLER.format(tests=TESTS_DIR, url=store.url, shard=shard, kill_at=kill_at, scramble=scramble)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr


# zarr writes of write_shard (dpcm-channel): 1-3 latents parts, 4-7 maps, 8-9 clips, 10 status
@pytest.mark.parametrize("kill_at", [1, 5, 10])  # first data write / mid maps / right before the status
def test_killed_writer_leaves_clips_not_done_and_a_rewrite_fixes_them(store, kill_at):
    write_and_kill(store, 1, kill_at)
    ro = open_store(store.url)
    assert list(ro.clip_status()[2:4]) == [0, 0]
    with pytest.raises(ClipNotAvailableError, match="pending"):
        read_clip(ro, 2)
    assert 1 in ro.shards_to_do()
    write_shard(open_store(store.url, "r+"), 1, shard_arrays(store, 1))
    assert list(ro.clip_status()[2:4]) == [1, 1]
    assert_clip_matches_truth(ro, 2)
    assert_clip_matches_truth(ro, 3)


def test_killed_rewrite_of_a_done_shard_does_not_leave_it_done(filled):
    """A --force rewrite killed after some new data landed: the old "done" must not vouch for it."""
    write_and_kill(filled, 0, kill_at=6, scramble=True)
    ro = open_store(filled.url)
    assert list(ro.clip_status()[:2]) == [0, 0]
    with pytest.raises(ClipNotAvailableError, match="pending"):
        read_clips(ro, [0, 1])
    assert ro.shards_to_do() == [0]


def shard_file(store, array: str, shard: int) -> Path:
    ndim = len(store.layouts[array].shape)
    return Path(store.url, array, "c", str(shard), *(["0"] * (ndim - 1)))


def truncate(path: Path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def test_torn_status_shard_reads_as_pending_and_is_rewritten(filled):
    path = shard_file(filled, "clips/status", 2)
    assert path.is_file()
    truncate(path)
    ro = open_store(filled.url)
    assert list(ro.clip_status()) == [1, 1, 1, 2, 0, 0, 1]
    with pytest.raises(ClipNotAvailableError, match="pending"):
        read_clip(ro, 4)
    assert ro.shards_to_do() == [2]
    report = verify(ro)
    assert any("clips/status: shard 2" in p for p in report.problems)
    write_shard(open_store(filled.url, "r+"), 2, shard_arrays(filled, 2))
    assert list(ro.clip_status()) == [1, 1, 1, 2, 1, 1, 1]
    assert_clip_matches_truth(ro, 4)
    assert verify(ro).problems == []


@pytest.mark.parametrize("array", ["latents/f4d", "maps/flow"])
def test_torn_data_shard_is_never_read_and_is_rewritten(filled, array):
    truncate(shard_file(filled, array, 0), keep=0.7)
    ro = open_store(filled.url)
    with pytest.raises(ClipNotAvailableError, match=f"{array} of shard 0 is unreadable"):
        read_clip(ro, 1)
    report = verify(ro)
    assert any(array in p and "shard 0" in p and "unreadable" in p for p in report.problems)
    write_shard(open_store(filled.url, "r+"), 0, shard_arrays(filled, 0))
    assert_clip_matches_truth(ro, 1)
    assert verify(ro).problems == []
