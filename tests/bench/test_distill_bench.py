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
def test_small_bench_orders_p4d_control_and_baseline(tmp_path):
    ...
