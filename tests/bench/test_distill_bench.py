"""`p4d bench distill`, a small version: real videos, the tiny teacher's cache, a P4D student, an SFT-only
student and its probe, scored on held-out clips by `p4d eval distill`."""

from __future__ import annotations

import pytest

from p4d.bench.registry import BENCHMARKS


def test_registered():
    assert BENCHMARKS["distill"] == "p4d.bench.distill"


def test_write_videos_split_and_durations(tmp_path):
    from p4d.bench.distill import DURATION_S, FPS, write_videos
    from p4d.video import probe

    train, held = write_videos(tmp_path, 2, 1)
    assert [p.parent.name for p in train + held] == ["train", "train", "held"]
    infos = [probe(p) for p in train + held]
    assert all(i.fps in FPS for i in infos)
    assert all(DURATION_S[0] - 0.1 <= i.duration <= DURATION_S[1] + 0.1 for i in infos)


@pytest.mark.slow
def test_small_bench_students_beat_the_video_blind_baseline(tmp_path):
    """What is reliable with the current tiny teacher: the video-blind baseline's residual r is exactly 0,
    and both the P4D student and the probe control (D_4DP on the frozen SFT-only student) find a positive
    video-specific part of F_4D and of the motion map on held-out clips. The issue's ordering P4D > control
    is NOT asserted: it was not reliable (F_4D r 0.167 vs 0.168 in this small version, 0.130 vs 0.104 and
    0.133 vs 0.114 at 16 videos x 80 / 200 steps; motion r of the control above P4D's in all three), see
    docs/eval.md, `p4d bench distill`."""
    from p4d.bench.distill import P4D, PROBE, held_out_scores, prepare
    from p4d.eval.distill import BASELINE

    s = prepare(tmp_path, 6, 2)
    assert len(s.train_clips) == 6 and len(s.held_clips) == 2 and not set(s.train_clips) & set(s.held_clips)
    rows = held_out_scores(s, steps=20)
    base, p4d, probe = rows[BASELINE], rows[P4D], rows[PROBE]
    assert all(base[f"{k}_r"] == 0 and base[f"{k}_r2"] == 0 for k in ("f4d", "depth", "motion"))
    seen = {k: (round(p4d[f"{k}_r"], 4), round(probe[f"{k}_r"], 4)) for k in ("f4d", "depth", "motion")}
    for student in (p4d, probe):
        assert student["f4d_r"] > 0 and student["motion_r"] > 0, seen
