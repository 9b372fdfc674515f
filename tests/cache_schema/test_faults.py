"""Fault injection on real stores: byte flips and deleted shard files in every array, chunks absent
from a shard index, a kill at every step of a store's creation, several processes creating one
new store at once. Every fault must be caught by ``verify`` and by the reader, and no kill may
leave a store that a rerun cannot finish."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import zarr

from p4d.cache_schema import create_store, open_store, read_clips, repair, verify, write_shard
from p4d.cache_schema import store as store_module
from p4d.errors import CacheIncompleteError, CacheNotFoundError, ClipNotAvailableError

from .conftest import tiny_spec, tiny_videos
from .helpers import shard_arrays

REPO = Path(__file__).resolve().parents[2]
# latents/f4d_bf16 holds only the clips whose codec self-check fell back to bfloat16; its shard file
# exists only where one did (none in these stores): covered by tests/cache_schema/test_fidelity.py
WRITTEN = lambda store: [p for p in store.layouts if p != "latents/f4d_bf16"]  # noqa: E731
SHARD = 2  # clips 4 and 5, both done (clip 3, failed, is in shard 1)


def _shard_file(store, path: str, shard: int) -> Path:
    return Path(store.shard_file(path, shard))


def _clean(store) -> dict[int, dict[str, np.ndarray]]:
    return {c: read_clips(store, [c]) for c in store.shard_clips(SHARD)}


def _reader_outcome(url: str, clean: dict) -> tuple[int, int]:
    """(clips refused, clips returned with values other than the clean ones) of shard SHARD, read
    through a fresh handle."""
    fresh = open_store(url, check=False)
    refused = wrong = 0
    for clip, want in clean.items():
        try:
            got = read_clips(fresh, [clip])
        except ClipNotAvailableError:
            refused += 1
            continue
        wrong += any(not np.array_equal(got[k], want[k], equal_nan=True) for k in want)
    return refused, wrong


def test_every_array_checksums_its_chunks_and_its_shard_index(filled):
    """Read from each array's zarr.json, not through p4d: the codec chain ends in crc32c and the
    shard index codecs hold crc32c."""
    for path in filled.layouts:
        meta = json.loads((Path(filled.url) / path / "zarr.json").read_text())
        (sharding,) = meta["codecs"]
        assert sharding["name"] == "sharding_indexed", path
        inner = [c["name"] for c in sharding["configuration"]["codecs"]]
        index = [c["name"] for c in sharding["configuration"]["index_codecs"]]
        assert inner[-1] == "crc32c" and "crc32c" in index, (path, inner, index)


def test_every_byte_flip_in_every_array_is_caught_by_verify_and_by_the_reader(filled):
    """8 single-byte flips per array (first byte, middle, chunk data, index, index checksum, last
    byte): verify names the shard every time; the reader refuses the damaged clip and never returns
    a value that differs from the clean store."""
    clean = _clean(filled)
    rng = np.random.default_rng(16)
    flips = caught_by_verify = caught_by_reader = silently_wrong = 0
    for path in WRITTEN(filled):
        f = _shard_file(filled, path, SHARD)
        data = f.read_bytes()
        n = len(data)
        positions = sorted({0, n // 3, n // 2, n - 20, n - 3, n - 1, *rng.integers(0, n, 2).tolist()})
        for pos in positions:
            flipped = bytearray(data)
            flipped[pos] ^= int(rng.integers(1, 256))
            f.write_bytes(bytes(flipped))
            try:
                flips += 1
                report = verify(open_store(filled.url, check=False))
                if path == "clips/video":
                    caught_by_verify += not report.video_table_ok and not report.ok
                else:
                    caught_by_verify += SHARD in report.damaged_shards and not report.ok
                refused, wrong = _reader_outcome(filled.url, clean)
                caught_by_reader += refused > 0
                silently_wrong += wrong
            finally:
                f.write_bytes(data)
    assert flips == caught_by_verify == caught_by_reader, (flips, caught_by_verify, caught_by_reader)
    assert silently_wrong == 0
    assert verify(open_store(filled.url)).ok  # restored


def test_a_deleted_shard_file_of_any_array_is_caught_and_repaired(filled):
    clean = _clean(filled)
    for path in WRITTEN(filled):
        f = _shard_file(filled, path, SHARD)
        data = f.read_bytes()
        f.unlink()
        try:
            report = verify(open_store(filled.url, check=False))
            if path == "clips/status":  # = an interrupted rewrite: pending, reported, redone by precompute
                assert report.counts["pending"] == 2 and open_store(filled.url).shards_to_do() == [SHARD]
                assert any(i.startswith(f"shard {SHARD} (clips 4-5): data written but no status file") for i in report.info)
            elif path == "clips/video":
                assert not report.ok and not report.video_table_ok
            else:
                assert not report.ok and SHARD in report.damaged_shards, (path, report.problems)
            refused, wrong = _reader_outcome(filled.url, clean)
            assert refused == len(clean) and wrong == 0, path
        finally:
            f.write_bytes(data)
    assert verify(open_store(filled.url)).ok


def test_repair_turns_damaged_shards_pending_and_rewrites_clips_video(filled):
    _shard_file(filled, "maps/depth", SHARD).unlink()
    f = _shard_file(filled, "latents/f4d", 0)
    data = bytearray(f.read_bytes())
    data[len(data) // 2] ^= 0x5A
    f.write_bytes(bytes(data))
    zarr.open_array(filled.url, path="clips/video", mode="r+")[:] = -1  # the rerun-of-a-killed-creation symptom
    store = open_store(filled.url, mode="r+", check=False)
    out = repair(store)
    assert out.rewrote_video_table and out.pending_shards == [0, SHARD] and out.pending_clips == 4
    after = verify(open_store(filled.url))
    assert after.ok, after.problems
    st = open_store(filled.url).clip_status()
    assert st.tolist() == [0, 0, 1, 2, 0, 0, 1]  # damaged shards pending, the others untouched
    assert open_store(filled.url).shards_to_do() == [0, SHARD]  # what a plain precompute rerun redoes
    np.testing.assert_array_equal(np.asarray(zarr.open_array(filled.url, path="clips/video")[:]), [0, 0, 1, 1, 1, 2, 2])
    for shard in (0, SHARD):  # the rewrite precompute would do
        write_shard(store, shard, shard_arrays(store, shard))
    assert verify(open_store(filled.url)).counts["done"] == 6


def test_a_done_clip_whose_chunk_is_absent_from_the_shard_index_is_caught(filled):
    """Rewrite shard SHARD of latents/f4d with write_empty_chunks off and clip 5 all fill value:
    zarr leaves its chunks out of the index and would read zeros; verify must say they were never written."""
    arr = zarr.open_array(filled.url, path="latents/f4d", mode="r+", config={"write_empty_chunks": False})
    values = np.asarray(arr[4:6])
    values[1] = arr.fill_value
    _shard_file(filled, "latents/f4d", SHARD).unlink()
    arr[4:6] = values
    report = verify(open_store(filled.url))
    assert SHARD in report.damaged_shards
    assert any("chunks of done clips [5] never written" in p for p in report.problems), report.problems


# --- kills during creation ---------------------------------------------------------------------------

_KILLER = textwrap.dedent("""
    import os, sys
    sys.path.insert(0, {tests!r})
    from p4d.cache_schema import store as s
    from cache_schema.conftest import tiny_spec, tiny_videos
    target = sys.argv[2]
    def step(name):
        if name == target:
            os._exit(137)
    s._creation_step = step
    if sys.argv[3] == "in-place":
        s._renames_atomically = lambda url: False
    s.create_store(sys.argv[1], tiny_spec(), tiny_videos(), join=True)
    sys.exit(3)  # the step never came
""")


def _creation_steps(tmp_path, monkeypatch, mode: str) -> list[str]:
    seen: list[str] = []
    monkeypatch.setattr(store_module, "_creation_step", seen.append)
    if mode == "in-place":
        monkeypatch.setattr(store_module, "_renames_atomically", lambda url: False)
    create_store(str(tmp_path / "probe.zarr"), tiny_spec(), tiny_videos())
    monkeypatch.undo()
    return seen


def _kill_at(url: str, step: str, mode: str) -> int:
    script = _KILLER.format(tests=str(REPO / "tests"))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-c", script, url, step, mode], env=env, capture_output=True,
                          timeout=120).returncode


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["rename", "in-place"])
def test_a_kill_at_every_creation_step_leaves_no_stuck_store(tmp_path, monkeypatch, mode):
    """Local stores are built in a temporary sibling and renamed into place; fsspec URLs (here: the
    same code on a local disk with renaming switched off) are built in place with the marker last.
    After a kill at any step a store is either absent, or complete, or reported as being created
    (never opened half-made), and a rerun creates a store that verifies."""
    steps = _creation_steps(tmp_path, monkeypatch, mode)
    assert steps[0] == "root" and "videos.json" in steps and "marker" in steps and len(steps) >= 14
    assert steps[-1] == ("renamed" if mode == "rename" else "marker")
    if mode == "in-place":  # the same code as "rename" up to the marker: the steps where they differ
        steps = [s for s in steps if not s.startswith("array ")] + [next(s for s in steps if s.startswith("array "))]
    outcome: dict[str, str] = {}
    for k, step in enumerate(steps):
        url = str(tmp_path / f"{mode}-{k}" / "cache.zarr")
        assert _kill_at(url, step, mode) == 137, step
        try:
            opened = open_store(url)
        except CacheIncompleteError:
            outcome[step] = "being created"
        except CacheNotFoundError:
            outcome[step] = "absent"
        else:
            assert verify(opened).ok, step
            outcome[step] = "complete"
        again = create_store(url, tiny_spec(), tiny_videos(), join=True)  # the rerun
        report = verify(open_store(url))
        assert report.ok and report.video_table_ok, (step, report.problems)
        assert again.num_clips == 7
        leftovers = [p.name for p in Path(url).parent.iterdir() if p.name != "cache.zarr"]
        assert leftovers == [], (step, leftovers)
    if mode == "rename":  # nothing half-made is ever visible
        assert set(outcome.values()) <= {"absent", "complete"} and outcome[steps[-1]] == "complete"
    else:
        assert outcome["root"] == "being created" and outcome["marker"] == "complete"


_JOINER = textwrap.dedent("""
    import logging, sys, time
    sys.path.insert(0, {tests!r})
    from p4d.cache_schema import create_store
    from cache_schema.conftest import tiny_spec, tiny_videos
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    start = float(sys.argv[2])
    while time.time() < start:
        time.sleep(0.001)
    store = create_store(sys.argv[1], tiny_spec(), tiny_videos(), join=sys.argv[3] == "join")
    print("num_clips", store.num_clips)
""")


@pytest.mark.slow
def test_concurrent_first_runs_on_one_new_store_one_creates_the_others_join(tmp_path):
    url = str(tmp_path / "new" / "cache.zarr")
    script = _JOINER.format(tests=str(REPO / "tests"))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    start = time.time() + 4.0
    procs = [subprocess.Popen([sys.executable, "-c", script, url, str(start), "join"], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(4)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0] * 4, [e[-1500:] for _, e in outs]
    assert all("num_clips 7" in o for o, _ in outs)
    logs = "".join(e for _, e in outs)
    assert sum(line.startswith("created ") for line in logs.splitlines()) == 1, logs
    report = verify(open_store(url))
    assert report.ok and report.counts["pending"] == 7
    assert [p.name for p in Path(url).parent.iterdir()] == ["cache.zarr"]


def test_the_codec_fallback_array_is_checked_too(store):
    """A shard whose clips all fell back to bfloat16 (a policy no quantised clip meets): flips and
    the deletion of latents/f4d_bf16 are caught like any other array's."""
    from p4d.cache_schema.fidelity import FidelityPolicy

    write_shard(store, SHARD, shard_arrays(store, SHARD), fidelity=FidelityPolicy(1.0, 1.0))
    assert np.asarray(zarr.open_array(store.url, path="clips/latent_codec")[4:6]).tolist() == [2, 2]
    clean = _clean(store)
    f = _shard_file(store, "latents/f4d_bf16", SHARD)
    data = f.read_bytes()
    for pos in (0, len(data) // 2, len(data) - 10, len(data) - 1):
        flipped = bytearray(data)
        flipped[pos] ^= 0x10
        f.write_bytes(bytes(flipped))
        assert SHARD in verify(open_store(store.url)).damaged_shards, pos
        refused, wrong = _reader_outcome(store.url, clean)
        assert refused >= 1 and wrong == 0, pos
    f.unlink()
    assert SHARD in verify(open_store(store.url)).damaged_shards
    assert _reader_outcome(store.url, clean) == (2, 0)
