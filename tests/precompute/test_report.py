"""The job report's derived figures, against hand-computed values."""

from p4d.precompute.job import PrecomputeReport


def test_steady_state_rate_excludes_the_first_shard():
    r = PrecomputeReport(completions=[(10.0, 4), (12.0, 4), (14.0, 2)], wall_s=15.0, clips_done=9, clips_failed=1)
    assert r.steady_clips_per_s == (4 + 2) / (14.0 - 10.0)
    assert "0.67 clips/s" in r.headline()  # 10 clips / 15 s
    assert PrecomputeReport(completions=[(1.0, 4)]).steady_clips_per_s == 0.0


def test_steady_state_rate_skips_every_shard_that_started_at_once():
    """2 shards in flight sharing one forward (2 s of it per shard, 2 clips each): the first two start
    together and interleave, completing at 3 and 4 s; from then on one completes every 2 s, so the
    rate is 2 clips / 2 s = 1.0. Skipping only the first completion would give 8 / 7."""
    completions = [(3.0, 2), (4.0, 2), (6.0, 2), (8.0, 2), (10.0, 2)]
    assert PrecomputeReport(completions=completions, in_flight=2).steady_clips_per_s == 1.0
    assert PrecomputeReport(completions=completions, in_flight=1).steady_clips_per_s == 8 / 7
    assert PrecomputeReport(completions=completions[:2], in_flight=4).steady_clips_per_s == 2 / 1.0
