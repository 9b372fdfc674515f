"""probe() on real PyAV-written files, and every kind of bad input."""

import pytest

from p4d.errors import VideoDecodeError
from p4d.video import DEFAULT_MAX_PIXELS, probe
from p4d.video.synthetic import write_synthetic_video

from .conftest import (
    FPS, NUM_FRAMES, audio_only_file, empty_file, random_bytes_file, text_file, truncated_copy, y4m_header_only,
)


def test_probe_reads_the_header(cfr_video):
    info = probe(cfr_video)
    assert (info.num_frames, info.fps, info.width, info.height, info.rotation) == (NUM_FRAMES, FPS, 64, 48, 0)
    assert info.duration == pytest.approx(NUM_FRAMES / FPS, abs=1e-6)
    assert info.codec == "h264"
    assert info.size_bytes == cfr_video.stat().st_size
    assert info.path == str(cfr_video)


def test_probe_counts_packets_when_the_container_has_no_frame_count(tmp_path):
    # Matroska declares no frame count, so the count comes from demuxing
    path = write_synthetic_video(tmp_path / "no_count.mkv", num_frames=20, size=(64, 48))
    info = probe(path)
    assert info.num_frames == 20
    assert info.duration == pytest.approx(20 / 24, abs=0.05)


@pytest.mark.parametrize(("rotation", "display"), [(0, (64, 48)), (90, (48, 64)), (180, (64, 48)), (270, (48, 64))])
def test_probe_reports_display_size_and_rotation(tmp_path, rotation, display):
    path = write_synthetic_video(tmp_path / f"rot{rotation}.mp4", num_frames=4, size=(64, 48), rotation=rotation)
    info = probe(path)
    assert info.rotation == rotation
    assert (info.width, info.height) == display


def test_probe_odd_size(tmp_path):
    info = probe(write_synthetic_video(tmp_path / "odd.mp4", num_frames=4, size=(101, 77)))
    assert (info.width, info.height, info.num_frames) == (101, 77, 4)


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda d: d / "missing.mp4", "no such file"),
        (lambda d: empty_file(d / "empty.mp4"), "empty"),
        (lambda d: text_file(d / "text.mp4"), "cannot be opened as a video"),
        (lambda d: random_bytes_file(d / "random.mp4"), "cannot be opened as a video"),
        (lambda d: audio_only_file(d / "audio.m4a"), "no video stream"),
        (lambda d: d, "expected a video file"),
    ],
    ids=["missing", "empty", "text", "random-bytes", "audio-only", "directory"],
)
def test_bad_inputs_raise_one_error_naming_the_file(tmp_path, make, expected):
    path = make(tmp_path)
    with pytest.raises(VideoDecodeError, match=expected) as info:
        probe(path)
    assert str(path) in str(info.value)


def test_truncated_mp4_with_index_at_the_end_cannot_be_opened(cfr_video, tmp_path):
    # PyAV writes the mp4 index (moov) last: half a file has no index at all
    path = truncated_copy(cfr_video, tmp_path / "half.mp4", 0.5)
    with pytest.raises(VideoDecodeError, match="cannot be opened") as info:
        probe(path)
    assert str(path) in str(info.value)


def test_declared_size_above_the_cap_is_refused_before_decoding(tmp_path):
    path = y4m_header_only(tmp_path / "huge.y4m", 8000, 8000)  # 64 M pixels > the 8K-UHD default cap
    assert 8000 * 8000 > DEFAULT_MAX_PIXELS
    message = r"8000x8000 .* exceeds the cap of 33177600 pixels.*--max-pixels"
    with pytest.raises(VideoDecodeError, match=message) as info:
        probe(path)
    assert str(path) in str(info.value)


def test_absurd_declared_size_is_a_decode_error(tmp_path):
    path = y4m_header_only(tmp_path / "absurd.y4m", 40000, 40000)  # ffmpeg itself refuses this header
    with pytest.raises(VideoDecodeError, match="absurd.y4m"):
        probe(path)


def test_max_pixels_is_adjustable(cfr_video):
    assert probe(cfr_video, max_pixels=64 * 48).width == 64
    with pytest.raises(VideoDecodeError, match="64x48 .* exceeds the cap of 3071 pixels"):
        probe(cfr_video, max_pixels=64 * 48 - 1)
