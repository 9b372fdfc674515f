"""decode_frames / sample_clip checked against truth recovered from the pixels (frame codes)
and against the presentation times the writer chose (CFR and VFR)."""

import re

import numpy as np
import pytest

from p4d.errors import ConfigError, VideoDecodeError
from p4d.video import decode_frames, read_frame_code, sample_clip
from p4d.video.synthetic import write_synthetic_video

from .conftest import FPS, cut_at_packet, decoded_codes, truncated_copy


def codes(frames):
    return [read_frame_code(f) for f in frames]


def test_uniform_sample_matches_pixels_and_times(cfr_video):
    clip = sample_clip(cfr_video, num_frames=8)
    assert clip.frames.shape == (8, 48, 64, 3) and clip.frames.dtype == np.uint8
    assert clip.frame_index.dtype == np.int32 and clip.timestamp.dtype == np.float32
    assert clip.frame_index.tolist() == [0, 7, 13, 20, 27, 34, 40, 47]  # round(linspace(0, 47, 8))
    assert codes(clip.frames) == clip.frame_index.tolist()
    np.testing.assert_allclose(clip.timestamp, clip.frame_index / FPS, atol=1e-6)  # writer put frame i at i/24 s
    assert clip.path == str(cfr_video)


def test_every_frame_in_order(cfr_video):
    clip = decode_frames(cfr_video, np.arange(48))
    assert codes(clip.frames) == list(range(48))
    np.testing.assert_allclose(clip.timestamp, np.arange(48) / FPS, atol=1e-6)


def test_duplicates_and_any_order(cfr_video):
    wanted = [30, 5, 5, 0, 47, 30]
    clip = decode_frames(cfr_video, wanted)
    assert clip.frame_index.tolist() == wanted
    assert codes(clip.frames) == wanted
    np.testing.assert_allclose(clip.timestamp, np.array(wanted) / FPS, atol=1e-6)


def test_stride_clip(cfr_video):
    clip = sample_clip(cfr_video, num_frames=4, policy="stride", clip=2, frame_stride=3)
    assert clip.frame_index.tolist() == [24, 27, 30, 33]  # clip k starts at k * 4 * 3
    assert codes(clip.frames) == [24, 27, 30, 33]


def test_clip_out_of_range(cfr_video):
    with pytest.raises(VideoDecodeError, match="clip 99 does not exist"):
        sample_clip(cfr_video, num_frames=4, policy="stride", clip=99)


def test_variable_frame_rate_timestamps_come_from_pts(tmp_path):
    # irregular gaps (10 ms .. 400 ms), first frame not at 0: timestamps count from the first frame
    times = [0.25, 0.26, 0.30, 0.45, 0.85, 0.90, 0.93, 1.20, 1.21, 1.50, 1.55, 1.95]
    path = write_synthetic_video(tmp_path / "vfr.mp4", num_frames=len(times), size=(64, 48), vfr_timestamps=times)
    clip = decode_frames(path, np.arange(len(times)))
    assert codes(clip.frames) == list(range(len(times)))
    np.testing.assert_allclose(clip.timestamp, np.array(times) - times[0], atol=1e-5)
    sampled = sample_clip(path, num_frames=4)
    assert sampled.frame_index.tolist() == [0, 4, 7, 11]  # round(linspace(0, 11, 4)) = 0, 3.67, 7.33, 11
    np.testing.assert_allclose(sampled.timestamp, [0.0, 0.60, 0.95, 1.70], atol=1e-5)


def test_matroska_without_frame_count(tmp_path):
    path = write_synthetic_video(tmp_path / "v.mkv", num_frames=20, size=(64, 48))
    clip = sample_clip(path, num_frames=5)
    assert clip.frame_index.tolist() == [0, 5, 10, 14, 19]  # round(0, 4.75, 9.5, 14.25, 19), 9.5 -> 10
    assert codes(clip.frames) == [0, 5, 10, 14, 19]
    np.testing.assert_allclose(clip.timestamp, clip.frame_index / 24, atol=1e-3)  # mkv stores milliseconds


def test_video_shorter_than_n_repeats_frames(tmp_path):
    path = write_synthetic_video(tmp_path / "short.mp4", num_frames=5, size=(64, 48))
    clip = sample_clip(path, num_frames=8)
    assert clip.frames.shape == (8, 48, 64, 3)
    assert clip.frame_index.tolist() == [0, 1, 1, 2, 2, 3, 3, 4]
    assert codes(clip.frames) == [0, 1, 1, 2, 2, 3, 3, 4]


def _block_word(frame, centers):
    """Read the 16 code bits at the given (row, col) block centres of a display frame."""
    luma = frame.astype(np.float32).mean(axis=-1)
    word = 0
    for r, c in centers:
        word = (word << 1) | int(luma[r - 1:r + 2, c - 1:c + 2].mean() >= 128)
    return word >> 4  # drop the 4 check bits


@pytest.mark.parametrize("rotation", [90, 180, 270])
def test_rotation_is_applied_counter_clockwise(tmp_path, rotation):
    height, width = 48, 64  # stored frame; code blocks are 8 x 8 (48 // 16 -> 8 rows, 64 // 8 cols)
    path = write_synthetic_video(tmp_path / f"r{rotation}.mp4", num_frames=12, size=(width, height), rotation=rotation)
    clip = decode_frames(path, [3, 9, 11])
    expected_shape = (48, 64, 3) if rotation == 180 else (64, 48, 3)
    assert clip.frames.shape == (3, *expected_shape)

    # where a stored pixel (r, c) lands after a counter-clockwise rotation (hand-derived, not np.rot90)
    def landed(r, c):
        return {90: (width - 1 - c, r), 180: (height - 1 - r, width - 1 - c), 270: (c, height - 1 - r)}[rotation]

    stored_centers = [(8 * (j // 8) + 4, 8 * (j % 8) + 4) for j in range(16)]
    display_centers = [landed(r, c) for r, c in stored_centers]
    for frame, index in zip(clip.frames, clip.frame_index):
        assert _block_word(frame, display_centers) == index
    # 90: the code strip (stored top) is now the left edge; 180: the bottom edge; 270: the right edge
    side = {90: clip.frames[:, :, :16], 180: clip.frames[:, -16:, :], 270: clip.frames[:, :, -16:]}[rotation]
    # only code blocks (pure black/white) and the mid-grey filler live in the strip
    assert np.all(np.abs(side.astype(int).mean(-1)[..., None] - [0, 128, 255]).min(-1) < 40)


def test_odd_size(tmp_path):
    path = write_synthetic_video(tmp_path / "odd.mp4", num_frames=9, size=(101, 77))
    clip = sample_clip(path, num_frames=3)
    assert clip.frames.shape == (3, 77, 101, 3)
    assert codes(clip.frames) == [0, 4, 8]


@pytest.mark.parametrize("size", [(32, 40), (224, 224), (48, 64)])
def test_resize_on_decode(cfr_video, size):
    clip = sample_clip(cfr_video, num_frames=3, size=size)
    assert clip.frames.shape == (3, *size, 3) and clip.frames.dtype == np.uint8


def test_resize_after_rotation_gives_the_asked_size(tmp_path):
    path = write_synthetic_video(tmp_path / "r90.mp4", num_frames=4, size=(64, 48), rotation=90)
    assert decode_frames(path, [0, 1], size=(20, 30)).frames.shape == (2, 20, 30, 3)


@pytest.mark.parametrize("bad", [[], [[1, 2]], [-1], [0.5]])
def test_bad_frame_index(cfr_video, bad):
    with pytest.raises(ConfigError, match="frame_index"):
        decode_frames(cfr_video, bad)


def test_index_beyond_the_end(cfr_video):
    message = r"wanted frame 48 but the stream ended after 48 decodable frames"
    with pytest.raises(VideoDecodeError, match=message) as info:
        decode_frames(cfr_video, [0, 48])
    assert str(cfr_video) in str(info.value)


def test_truncated_mid_packet_is_a_decode_error_naming_the_file(faststart_video, tmp_path):
    path = truncated_copy(faststart_video, tmp_path / "cut.mp4", 0.6)  # header still says 48 frames
    with pytest.raises(VideoDecodeError, match=r"decoding failed after \d+ decodable frames") as info:
        decode_frames(path, np.arange(48))
    assert str(path) in str(info.value)
    with pytest.raises(VideoDecodeError, match="cut.mp4"):
        sample_clip(path, num_frames=8)


def test_header_overcounting_frames(faststart_video, tmp_path):
    # cut exactly at a packet boundary: the header declares 48 frames, the stream ends cleanly earlier
    path = cut_at_packet(faststart_video, tmp_path / "short_stream.mp4", 30)
    truth = decoded_codes(path)  # codes of the frames plain PyAV decodes, in output order
    available = len(truth)
    assert 0 < available < 48
    with pytest.raises(VideoDecodeError, match=f"stream ended after {available} decodable frames") as info:
        decode_frames(path, np.arange(48))
    assert str(path) in str(info.value)
    # sample_clip re-plans from the true count. Frame index i is the i-th frame the decoder outputs:
    # with B-frames cut off, that need not be the frame written i-th, hence truth[i] rather than i
    clip = sample_clip(path, num_frames=4)
    expected = np.round(np.linspace(0, available - 1, 4)).astype(int).tolist()
    assert clip.frame_index.tolist() == expected
    assert codes(clip.frames) == [truth[i] for i in expected]


def test_bad_files_raise_from_decode_too(tmp_path):
    missing = tmp_path / "nope.mp4"
    with pytest.raises(VideoDecodeError, match=re.escape(str(missing))):
        decode_frames(missing, [0])
    with pytest.raises(VideoDecodeError, match="exceeds the cap"):
        sample_clip(write_synthetic_video(tmp_path / "v.mp4", num_frames=2, size=(64, 48)), 2, max_pixels=100)
