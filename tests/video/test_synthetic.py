"""The synthetic writer, checked with plain PyAV (not p4d.video.decode): codes, times, rotation, motion."""

from fractions import Fraction

import av
import numpy as np
import pytest

from p4d.errors import ConfigError
from p4d.video import read_frame_code, write_demo_videos, write_synthetic_video

from .conftest import decoded_codes


def plain_decode(path):
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = list(container.decode(stream))
        return stream, frames


def test_codes_survive_h264_at_the_smallest_size(tmp_path):
    path = write_synthetic_video(tmp_path / "v.mp4", num_frames=40, size=(64, 48))
    assert decoded_codes(path) == list(range(40))


def test_large_indices_are_coded(tmp_path):
    # 12-bit code: the last frames of a long video still read back (bits beyond the first byte used)
    path = write_synthetic_video(tmp_path / "long.mp4", num_frames=300, fps=60, size=(64, 32))
    assert decoded_codes(path)[-3:] == [297, 298, 299]


def test_stream_properties(tmp_path):
    path = write_synthetic_video(tmp_path / "v.mp4", num_frames=6, fps=30, size=(80, 60))
    stream, frames = plain_decode(path)
    assert stream.codec_context.name == "h264" and stream.codec_context.pix_fmt == "yuv420p"
    assert (frames[0].width, frames[0].height, len(frames)) == (80, 60, 6)
    assert [float(f.pts * stream.time_base) for f in frames] == pytest.approx([i / 30 for i in range(6)], abs=1e-6)


def test_odd_size_is_stored_as_yuv444(tmp_path):
    stream, frames = plain_decode(write_synthetic_video(tmp_path / "odd.mp4", num_frames=3, size=(101, 77)))
    assert stream.codec_context.pix_fmt == "yuv444p"
    assert (frames[0].width, frames[0].height) == (101, 77)


@pytest.mark.parametrize("rotation", [90, 180, 270])
def test_rotation_is_in_the_display_matrix(tmp_path, rotation):
    _, frames = plain_decode(write_synthetic_video(tmp_path / "r.mp4", num_frames=2, size=(64, 48), rotation=rotation))
    assert frames[0].rotation % 360 == rotation  # PyAV reports [-180, 180], counter-clockwise


def test_vfr_pts_are_the_asked_times(tmp_path):
    times = [0.0, 0.011, 0.5, 0.52, 1.0]
    stream, frames = plain_decode(write_synthetic_video(tmp_path / "vfr.mp4", num_frames=5, size=(64, 48),
                                                        vfr_timestamps=times))
    assert [float(f.pts * stream.time_base) for f in frames] == pytest.approx(times, abs=1e-5)


def test_same_seed_same_pixels_other_seed_other_pixels(tmp_path):
    a = write_synthetic_video(tmp_path / "a.mp4", num_frames=3, size=(64, 48), seed=7)
    b = write_synthetic_video(tmp_path / "b.mp4", num_frames=3, size=(64, 48), seed=7)
    c = write_synthetic_video(tmp_path / "c.mp4", num_frames=3, size=(64, 48), seed=8)
    pa, pb, pc = ([f.to_ndarray(format="rgb24") for f in plain_decode(p)[1]] for p in (a, b, c))
    assert all(np.array_equal(x, y) for x, y in zip(pa, pb))
    assert not np.array_equal(pa[0], pc[0])


def test_scene_moves_below_the_code_strip(tmp_path):
    path = write_synthetic_video(tmp_path / "v.mp4", num_frames=12, size=(160, 120))
    frames = np.stack([f.to_ndarray(format="rgb24") for f in plain_decode(path)[1]]).astype(np.float32)
    scene = frames[:, 16:]  # below the 2 x 8-row code strip
    step = np.abs(np.diff(scene, axis=0)).mean(axis=(1, 2, 3))
    assert np.all(step > 3)  # every frame differs from the last (camera pan + objects)
    assert scene.std() > 30  # textured, not flat


def test_read_frame_code_rejects_frames_without_a_code():
    with pytest.raises(ValueError, match="neither black nor white"):
        read_frame_code(np.full((48, 64, 3), 128, dtype=np.uint8))
    black = np.zeros((48, 64, 3), dtype=np.uint8)  # all-zero word: index 0 would need check 0b1010
    with pytest.raises(ValueError, match="check failed"):
        read_frame_code(black)


def test_read_frame_code_rejects_a_rotated_frame(tmp_path):
    path = write_synthetic_video(tmp_path / "v.mp4", num_frames=6, size=(64, 48))
    frame = plain_decode(path)[1][5].to_ndarray(format="rgb24")
    assert read_frame_code(frame) == 5
    with pytest.raises(ValueError):
        read_frame_code(np.rot90(frame, 2))


def test_demo_videos(tmp_path):
    paths = write_demo_videos(tmp_path / "demo", count=2, seed=3, seconds=0.5)
    assert [p.name for p in paths] == ["demo_000.mp4", "demo_001.mp4"]
    for p in paths:
        stream, frames = plain_decode(p)
        assert len(frames) == 12 and stream.average_rate == Fraction(24)
    first = [plain_decode(p)[1][0].to_ndarray(format="rgb24") for p in paths]
    assert not np.array_equal(first[0], first[1])  # one seed per video


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"size": (32, 48)}, "size"),
        ({"rotation": 45}, "rotation"),
        ({"num_frames": 5000}, "num_frames"),
        ({"num_frames": 3, "vfr_timestamps": [0.0, 0.2, 0.1]}, "vfr_timestamps"),
        ({"num_frames": 3, "vfr_timestamps": [0.0, 0.1]}, "vfr_timestamps"),
        ({"fps": 0}, "fps"),
    ],
)
def test_bad_arguments(tmp_path, kwargs, match):
    with pytest.raises(ConfigError, match=match):
        write_synthetic_video(tmp_path / "x.mp4", **kwargs)
