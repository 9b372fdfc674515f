"""decode_clips: every wanted frame decoded once for all clips of a video; seeking when cheaper.

Truth: the synthetic videos' frame codes (the index written into each frame's pixels) and their
timestamps i / fps; frames of the seek path compared byte for byte with the sequential path.
"""

import numpy as np
import pytest

from p4d.errors import VideoDecodeError
from p4d.video import DecodeStats, decode_clips, decode_frames, plan_clips, read_frame_code, write_synthetic_video
from p4d.video.decode import plan_runs

FPS = 24


@pytest.fixture(scope="module")
def gop_video(tmp_path_factory):
    """240 frames, a keyframe every 12 (20 GOPs), 64x48."""
    return write_synthetic_video(tmp_path_factory.mktemp("gop") / "gop12.mp4", num_frames=240, fps=FPS,
                                 size=(64, 48), seed=4, gop=12)


def test_plan_runs_by_hand():
    keys = np.arange(0, 240, 12)
    # dense: one sequential run from 0
    assert plan_runs(np.arange(0, 32, 2), keys, 8) == [(0, 30)]
    # far apart: seek to each wanted frame's keyframe (100 -> 96, 200 -> 192) when the skip is long
    assert plan_runs(np.array([5, 100, 200]), keys, 8) == [(0, 5), (96, 100), (192, 200)]
    # a first wanted frame far from 0 starts at its keyframe
    assert plan_runs(np.array([150, 151]), keys, 8) == [(144, 151)]
    # skipping 10 frames is cheaper than a seek (8) + 3 frames from keyframe 12
    assert plan_runs(np.array([4, 15]), keys, 8) == [(0, 15)]
    # with seeks free, every new keyframe segment is a seek
    assert plan_runs(np.array([4, 15]), keys, 0) == [(0, 4), (12, 15)]
    # one keyframe only (frame 0): always sequential
    assert plan_runs(np.array([3, 100, 230]), np.array([0]), 8) == [(0, 230)]


@pytest.mark.parametrize("want", [[5, 100, 101, 230], [239], [0, 13, 26, 200, 201, 202], [150, 7, 7, 150]])
def test_seek_and_sequential_paths_agree_with_the_frame_codes(gop_video, want):
    seq_stats, seek_stats = DecodeStats(), DecodeStats()
    seq = decode_clips(gop_video, [want], seek=False, stats=seq_stats)[0]
    sk = decode_clips(gop_video, [want], seek=True, stats=seek_stats)[0]
    assert seq_stats.paths == ["sequential"] and seek_stats.paths in (["seek"], ["sequential"])
    assert [read_frame_code(f) for f in sk.frames] == want
    assert sk.frames.tobytes() == seq.frames.tobytes()
    np.testing.assert_array_equal(sk.timestamp, seq.timestamp)
    np.testing.assert_allclose(sk.timestamp, np.array(want) / FPS, atol=1e-6)
    assert seek_stats.frames_decoded <= seq_stats.frames_decoded


def test_the_cost_model_seeks_for_sparse_frames_of_a_long_video(gop_video):
    stats = DecodeStats()
    clip = decode_clips(gop_video, [[10, 120, 230]], stats=stats)[0]
    assert [read_frame_code(f) for f in clip.frames] == [10, 120, 230]
    assert stats.paths == ["seek"] and stats.seeks == 2
    # frames 0..10, 120 (its own keyframe), 228..230
    assert stats.frames_decoded == 11 + 1 + 3


def test_dense_frames_never_look_for_keyframes(gop_video):
    stats = DecodeStats()
    decode_clips(gop_video, [np.arange(0, 40, 2)], stats=stats)
    assert stats.paths == ["sequential"] and stats.frames_decoded == 39


def test_stride_clips_decode_each_frame_once_whatever_their_number(tmp_path):
    """K stride clips of one video: decoded frames per clip stay N*s for every K (the old
    per-clip decode from frame 0 cost (k+1)*N*s for clip k, O(K^2) per video)."""
    n, s = 8, 2
    video = write_synthetic_video(tmp_path / "long.mp4", num_frames=4 * n * s, fps=FPS, size=(64, 48), seed=1)
    per_clip = {}
    for k in (1, 2, 4):
        clips = plan_clips(k * n * s, num_frames=n, policy="stride", frame_stride=s)
        assert len(clips) == k
        stats = DecodeStats()
        out = decode_clips(video, clips, stats=stats)
        for idx, clip in zip(clips, out):
            assert [read_frame_code(f) for f in clip.frames] == list(idx)
        per_clip[k] = stats.frames_decoded / k
    # the last clip's last wanted frame is k*n*s - s, so k*n*s - 1 frames decode in all
    assert per_clip == {k: (k * n * s - 1) / k for k in (1, 2, 4)}
    assert max(per_clip.values()) <= n * s


def test_clips_past_the_end_fail_alone(tmp_path):
    video = write_synthetic_video(tmp_path / "short.mp4", num_frames=20, fps=FPS, size=(64, 48))
    ok, late = decode_clips(video, [[0, 5, 10], [15, 25]])
    assert [read_frame_code(f) for f in ok.frames] == [0, 5, 10]
    assert isinstance(late, VideoDecodeError) and "wanted frame 25" in str(late) and "after 20" in str(late)
    with pytest.raises(VideoDecodeError, match="wanted frame 25"):
        decode_frames(video, [15, 25])

