"""`p4d bench distill`, a small version: real videos, the tiny teacher's cache, a P4D student, an SFT-only
student and its probe, scored on held-out clips by `p4d eval distill`."""

from __future__ import annotations

import numpy as np
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


def test_write_videos_log_uniform_durations(tmp_path):
    """(b)'s videos: durations in TEMPORAL_DURATION_S; drawn log-uniformly, i.e. half of them below the
    range's geometric mean (4 s for 1-16 s) and a quarter in each octave, where a uniform draw puts 20 %
    below 4 s."""
    from p4d.bench.distill import FPS, TEMPORAL_DURATION_S, draw_duration, write_videos
    from p4d.video import probe

    lo, hi = TEMPORAL_DURATION_S
    train, _ = write_videos(tmp_path, 3, 0, durations=(lo, hi), spacing="log")
    infos = [probe(p) for p in train]
    assert all(i.fps in FPS for i in infos)
    assert all(lo - 0.1 <= i.duration <= hi + 0.1 for i in infos), [i.duration for i in infos]

    rng = np.random.default_rng(0)
    log_d = np.array([draw_duration(rng, (1.0, 16.0), "log") for _ in range(20000)])
    uni_d = np.array([draw_duration(rng, (1.0, 16.0), "uniform") for _ in range(20000)])
    assert log_d.min() >= 1.0 and log_d.max() <= 16.0
    assert np.mean(log_d < 4.0) == pytest.approx(0.5, abs=0.02)
    octaves = [np.mean((log_d >= 2 ** k) & (log_d < 2 ** (k + 1))) for k in range(4)]
    assert octaves == pytest.approx([0.25] * 4, abs=0.02)
    assert np.mean(uni_d < 4.0) == pytest.approx(3 / 15, abs=0.02)


def test_write_videos_rejects_an_unknown_spacing(tmp_path):
    from p4d.bench.distill import write_videos
    from p4d.errors import ConfigError

    with pytest.raises(ConfigError, match="spacing must be 'uniform' or 'log', found 'exp'"):
        write_videos(tmp_path, 1, 0, spacing="exp")


@pytest.mark.slow
def test_small_bench_orders_p4d_above_the_probe_control_above_the_video_blind_baseline(tmp_path):
    """Issue 29's ordering on held-out clips, small (12 + 3 videos, 224 px students, 60 steps): the
    video-blind baseline's residual r is exactly 0; the P4D student's depth and motion r are above the
    probe control's (D_4DP on the frozen SFT-only student, the same LD + ED loss) and above the baseline's;
    the control's motion r is above the baseline's. Measured (one thread): depth 0.196 vs -0.248, motion
    0.141 vs 0.074, F_4D 0.075 vs 0.053; at this size the control's depth r is below 0, so the control is
    not held above the baseline on depth. (The full bench's margins: docs/eval.md.)"""
    from p4d.bench.distill import P4D, PROBE, held_out_scores, prepare
    from p4d.eval.distill import BASELINE

    s = prepare(tmp_path, 12, 3, image_size=224)
    assert len(s.train_clips) == 12 and len(s.held_clips) == 3 and not set(s.train_clips) & set(s.held_clips)
    rows = held_out_scores(s, steps=60)
    base, p4d, probe = rows[BASELINE], rows[P4D], rows[PROBE]
    assert all(base[f"{k}_r"] == 0 and base[f"{k}_r2"] == 0 for k in ("f4d", "depth", "motion"))
    seen = {k: (round(p4d[f"{k}_r"], 4), round(probe[f"{k}_r"], 4)) for k in ("f4d", "depth", "motion")}
    assert p4d["depth_r"] > max(probe["depth_r"], 0), seen
    assert p4d["motion_r"] > probe["motion_r"] > 0, seen


@pytest.mark.slow
def test_temporal_scores_small_plan(tmp_path):
    """(b)'s own path, small: its own log-uniform videos and cache, one real SFT-only student per time cue,
    each scored by `p4d eval` on the held-out numeric items; the best constant's MRA is recomputed here
    from the train durations' median. (Whether TPE beats no cue needs the tiny plan's 96 videos x 1,000
    steps, see docs/eval.md; 4 steps teach nothing.)"""
    from p4d.bench.distill import TEMPORAL_DURATION_S, TIME_CUES, Plan, temporal_scores
    from p4d.eval.items import load_bench
    from p4d.eval.scoring import mra

    plan = Plan(train_videos=0, held_videos=0, steps=0, curve_steps=0, image_size=56, temporal_train=4, temporal_held=2,
                temporal_steps=4)
    scores, (guess, const), s = temporal_scores(tmp_path, plan, plan.temporal_steps)
    assert set(scores) == set(TIME_CUES) and all(0 <= v <= 100 for v in scores.values()), scores
    assert len(s.train_clips) == 4 and len(s.held_clips) == 2
    lo, hi = TEMPORAL_DURATION_S
    assert all(lo - 0.1 <= d <= hi + 0.1 for d in s.durations)
    items = load_bench(s.held_items).items
    assert len(items) == 2 and all(i.is_numeric for i in items)
    assert guess == round(float(np.median(s.durations)), 1)
    assert const == pytest.approx(100 * np.mean([mra(guess, float(i.answer)) for i in items]))
    for cue in TIME_CUES:
        assert (tmp_path / f"sft-{cue}" / "export").is_dir() and (tmp_path / f"eval-{cue}.jsonl").is_file()
