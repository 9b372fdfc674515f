"""Clip-level progress of precompute: the line and ETA against hand-computed values, the driver's count
(de-duplicated, reconciled per shard, resumed), and on a real LocalCluster one event per clip."""

import dataclasses
import io

import pytest

from p4d.cache_schema import open_store
from p4d.precompute.config import PrecomputeConfig
from p4d.precompute.job import run_precompute
from p4d.precompute.progress import ClipProgress, display_mode, format_duration, progress_line


def test_durations_by_hand():
    assert format_duration(56.08) == "56 s"
    assert format_duration(99.4) == "99 s"
    assert format_duration(100) == "1 min 40 s"
    assert format_duration(725) == "12 min 05 s"
    assert format_duration(6000) == "1 h 40 min"
    assert format_duration(3 * 3600 + 7 * 60 + 20) == "3 h 07 min"


def test_line_by_hand():
    # (120 - 37) clips left at 2.1 clip/s: 39.52 s
    assert progress_line(37, 120, 2.1) == "clips 37/120, 2.1 clip/s, ETA 40 s"
    assert progress_line(37, 120, 2.1, failed=3) == "clips 37/120 (3 failed), 2.1 clip/s, ETA 40 s"
    assert progress_line(40, 120, 0.0) == "clips 40/120, 0.0 clip/s, ETA ?"  # resumed, nothing new yet
    assert progress_line(120, 120, 1.0) == "clips 120/120, 1.0 clip/s, ETA 0 s"


class Clock:
    def __init__(self):
        self.t = 1000.0

    def __call__(self):
        return self.t


def test_resumed_count_rate_eta_and_line_throttle():
    """40 of 120 clips complete before the run; 37 more processed in 25 s: rate 37 / 25 = 1.48 clip/s,
    ETA (120 - 77) / 1.48 = 29.05 s. One line per 15 s at most: at t = 15 and t = 30, not in between."""
    clock, lines = Clock(), []
    p = ClipProgress(total=120, initial=40, show="lines", every_s=15, clock=clock, emit=lines.append)
    assert p.line() == "clips 40/120, 0.0 clip/s, ETA ?"
    for k in range(37):  # clips 40..76 of shards of 4, one event each, every 25/37 s
        clock.t = 1000.0 + 25.0 * (k + 1) / 37
        p.on_event((0.0, [10 + k // 4, 40 + k, 1]))
    assert (p.count, p.events, p.failed) == (77, 37, 0)
    assert p.line() == "clips 77/120, 1.5 clip/s, ETA 29 s"
    # a line at the first event at or after 15 s (k = 22: 23 clips, 15.54 s); the next is due at >= 30.54 s
    assert lines == ["clips 63/120, 1.5 clip/s, ETA 39 s"]  # 23 / 15.54 = 1.48; 57 / 1.48 = 38.5


def test_each_clip_counts_once_and_a_shard_completes_the_rest():
    p = ClipProgress(total=8, show="none")
    p.on_event((0.0, [0, 0, 1]))
    p.on_event((0.0, [0, 1, 0]))   # clip 1 failed
    p.on_event((0.0, [0, 1, 0]))   # a retried shard reports its clips again
    assert (p.count, p.failed, p.events) == (2, 1, 3)
    p.on_shard(0, [0, 1, 2, 3], failed=2)  # clips 2, 3 sent no event; the shard says 2 failed in all
    assert (p.count, p.failed) == (4, 2)
    p.on_event((0.0, [0, 3, 1]))   # late event of a completed shard: ignored
    p.on_shard(1, [4, 5, 6, 7], failed=0)  # no events at all: today's per-shard count
    assert (p.count, p.failed) == (8, 2)


def test_display_mode_follows_the_terminal():
    class Tty(io.StringIO):
        def isatty(self):
            return True

    assert display_mode(True, Tty()) == "bar"
    assert display_mode(True, io.StringIO()) == "lines"
    assert display_mode(False, Tty()) == "none"


def _no_events(url, shard, job):
    """The real shard task with progress events switched off (a worker that cannot send them)."""
    from p4d.precompute.worker import process_shard

    return process_shard(url, shard, dataclasses.replace(job, progress_topic=None))


@pytest.mark.slow
def test_one_event_per_clip_on_an_existing_cluster_resumed_and_without_events(video_list, tmp_path):
    """On a real LocalCluster given as --scheduler: shards 0-1 (6 clips: 2 failed decodes, ...), then the
    rest as a resume (its 6 clips counted at start, one event for each of the 5 new ones), then --force
    with a shard task that sends no events (the count still ends at every clip, per shard)."""
    from distributed import LocalCluster

    def cfg(**kw):
        return PrecomputeConfig(**{**dict(videos=str(video_list), store=str(tmp_path / "c.zarr"), teacher="tiny",
                                          policy="stride", clips_per_shard=3, batch_size=2, device="cpu",
                                          progress=True), **kw})

    with LocalCluster(n_workers=1, threads_per_worker=2, processes=True, host="127.0.0.1",
                      dashboard_address=None) as cluster:
        first = run_precompute(cfg(scheduler=cluster.scheduler_address, shards=(0, 2)))
        assert first.clips_done + first.clips_failed == 6
        assert first.clip_events == 6 and first.clips_counted == 6
        rest = run_precompute(cfg(scheduler=cluster.scheduler_address))
        assert rest.shards_skipped == 2 and rest.clips_done + rest.clips_failed == 5
        assert rest.clip_events == 5 and rest.clips_counted == 11
        status = open_store(str(tmp_path / "c.zarr")).status()
        assert status["done"] + status["failed"] == rest.clips_counted == status["total"]
        quiet = run_precompute(cfg(scheduler=cluster.scheduler_address, force=True), shard_fn=_no_events)
        assert quiet.clip_events == 0 and quiet.clips_counted == 11 == quiet.clips_done + quiet.clips_failed
