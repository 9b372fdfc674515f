"""The job report's derived figures, against hand-computed values."""

from p4d.precompute.job import PrecomputeReport


def test_steady_state_rate_excludes_the_first_shard():
    r = PrecomputeReport(completions=[(10.0, 4), (12.0, 4), (14.0, 2)], wall_s=15.0, clips_done=9, clips_failed=1)
    assert r.steady_clips_per_s == (4 + 2) / (14.0 - 10.0)
    assert "0.67 clips/s" in r.headline()  # 10 clips / 15 s
    assert PrecomputeReport(completions=[(1.0, 4)]).steady_clips_per_s == 0.0
