"""Clip plans against hand-computed index tables, plus invariants over many video lengths."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from p4d.errors import ConfigError
from p4d.video import plan_clips


def as_lists(clips):
    return [c.tolist() for c in clips]


@pytest.mark.parametrize(
    ("n", "num_frames", "expected"),
    [
        (48, 4, [0, 16, 31, 47]),  # linspace(0, 47, 4) = 0, 15.67, 31.33, 47
        (48, 8, [0, 7, 13, 20, 27, 34, 40, 47]),  # 0, 6.71, 13.43, 20.14, 26.86, 33.57, 40.29, 47
        (10, 4, [0, 3, 6, 9]),
        (4, 3, [0, 2, 3]),  # 0, 1.5, 3: numpy rounds 1.5 half to even -> 2
        (6, 3, [0, 2, 5]),  # 0, 2.5, 5: 2.5 -> 2 (half to even)
        (100, 1, [0]),
    ],
)
def test_uniform_hand_table(n, num_frames, expected):
    clips = plan_clips(n, num_frames=num_frames)
    assert as_lists(clips) == [expected]
    assert clips[0].dtype == np.int32


@pytest.mark.parametrize(
    ("n", "num_frames", "expected"),
    [
        (3, 8, [0, 0, 1, 1, 1, 1, 2, 2]),  # 0, .29, .57, .86, 1.14, 1.43, 1.71, 2
        (5, 8, [0, 1, 1, 2, 2, 3, 3, 4]),  # 0, .57, 1.14, 1.71, 2.29, 2.86, 3.43, 4
        (1, 4, [0, 0, 0, 0]),
    ],
)
def test_uniform_shorter_than_n_repeats_frames(n, num_frames, expected):
    assert as_lists(plan_clips(n, num_frames=num_frames)) == [expected]


@pytest.mark.parametrize(
    ("n", "num_frames", "stride", "expected"),
    [
        (10, 4, 1, [[0, 1, 2, 3], [4, 5, 6, 7]]),  # frames 8, 9 do not make a whole clip
        (12, 4, 1, [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11]]),
        (20, 4, 2, [[0, 2, 4, 6], [8, 10, 12, 14]]),  # a third clip would need frame 22
        (22, 4, 2, [[0, 2, 4, 6], [8, 10, 12, 14]]),
        (23, 4, 2, [[0, 2, 4, 6], [8, 10, 12, 14], [16, 18, 20, 22]]),
        (7, 3, 3, [[0, 3, 6]]),
    ],
)
def test_stride_hand_table(n, num_frames, stride, expected):
    clips = plan_clips(n, num_frames=num_frames, policy="stride", frame_stride=stride)
    assert as_lists(clips) == expected
    assert all(c.dtype == np.int32 for c in clips)


def test_stride_too_short_falls_back_to_one_uniform_clip():
    # one stride clip of 4 frames every 2 needs 7 frames (0..6); 5 frames give uniform 0, 1.33, 2.67, 4
    assert as_lists(plan_clips(5, num_frames=4, policy="stride", frame_stride=2)) == [[0, 1, 3, 4]]


@pytest.mark.parametrize(
    ("kwargs", "flag"),
    [
        ({"policy": "random"}, "--policy"),
        ({"num_frames": 0}, "--num-frames"),
        ({"frame_stride": 0, "policy": "stride"}, "--frame-stride"),
    ],
)
def test_bad_options_raise_config_error_naming_the_flag(kwargs, flag):
    with pytest.raises(ConfigError, match=flag):
        plan_clips(48, **kwargs)


def test_video_without_frames_is_a_config_error():
    with pytest.raises(ConfigError, match="num_frames_in_video"):
        plan_clips(0)


@settings(max_examples=200, deadline=None)
@given(n=st.integers(1, 400), num_frames=st.integers(1, 20), stride=st.integers(1, 6))
def test_stride_plan_invariants(n, num_frames, stride):
    clips = plan_clips(n, num_frames=num_frames, policy="stride", frame_stride=stride)
    flat = np.concatenate(clips)
    assert all(len(c) == num_frames for c in clips)
    assert flat.min() >= 0 and flat.max() <= n - 1
    if (num_frames - 1) * stride <= n - 1:
        # back to back on one grid of step `stride`, and no further whole clip would fit
        assert np.array_equal(flat, stride * np.arange(len(flat)))
        assert len(flat) * stride + (num_frames - 1) * stride > n - 1
    else:
        assert len(clips) == 1 and clips[0][0] == 0 and clips[0][-1] == n - 1


@settings(max_examples=200, deadline=None)
@given(n=st.integers(1, 400), num_frames=st.integers(1, 20))
def test_uniform_plan_invariants(n, num_frames):
    (clip,) = plan_clips(n, num_frames=num_frames)
    assert len(clip) == num_frames and clip[0] == 0
    assert np.all(np.diff(clip) >= 0) and clip.max() <= n - 1
    if num_frames > 1:
        assert clip[-1] == n - 1
    if n >= num_frames:
        assert len(set(clip.tolist())) == num_frames  # no repeats when the video is long enough
