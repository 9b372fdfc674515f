"""The MP4: one frame per clip frame, at the source timing, decoded back with PyAV."""

from fractions import Fraction

import av
import numpy as np
import pytest

from p4d.errors import ConfigError
from p4d.inspect import inspect_store
from p4d.inspect.video import TIME_BASE, presentation_times

pytestmark = pytest.mark.slow


def test_mp4_frame_count_size_and_source_timing(store_path, tmp_path):
    out = tmp_path / "clip3.mp4"
    result = inspect_store(str(store_path), out, clip=3)
    assert result.clips == [3]
    with av.open(str(out)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        frames = [(f.width, f.height, float(f.pts * f.time_base), f.to_ndarray(format="rgb24"))
                  for f in container.decode(stream)]
    assert len(frames) == 16
    sizes = {(w, h) for w, h, _, _ in frames}
    assert len(sizes) == 1
    width, height = sizes.pop()
    assert width % 2 == 0 and height % 2 == 0
    from p4d.inspect.panels import CAMERA_PLOT_SIZE

    assert width >= 9 * 112 and 112 < height < 2 * 112 + 100 + CAMERA_PLOT_SIZE[0]  # one row of 9 tiles + title + legends
    # clip 3 = good1.mp4 frames 0..15 at 12 fps: the stored timestamps i / 12 s, from 0
    times = np.array([t for _, _, t, _ in frames])
    np.testing.assert_allclose(times, np.arange(16) / 12, atol=1e-3)
    # frames differ over time (the source frame and maps change)
    assert np.abs(frames[0][3].astype(int) - frames[8][3].astype(int)).mean() > 1


def test_strided_clip_plays_from_zero_at_the_stored_spacing(store_path, tmp_path):
    """Clip 4 = good1.mp4 frames 16..31 stored at t = 1.333..2.583 s: the MP4 starts at 0."""
    out = tmp_path / "clip4.mp4"
    inspect_store(str(store_path), out, clip=4)
    with av.open(str(out)) as container:
        times = [float(f.pts * f.time_base) for f in container.decode(video=0)]
    np.testing.assert_allclose(times, np.arange(16) / 12, atol=1e-3)


def test_presentation_times():
    ts = np.array([2.0, 2.5, 2.6, 4.0])
    assert presentation_times(ts).tolist() == [0, 45000, 54000, 180000]
    assert TIME_BASE == Fraction(1, 90000)
    with pytest.raises(ConfigError, match="strictly increasing"):
        presentation_times(np.array([0.0, 0.0, 1.0]))


def test_mp4_refuses_a_frame_subset(store_path, tmp_path):
    with pytest.raises(ConfigError, match="--frames"):
        inspect_store(str(store_path), tmp_path / "x.mp4", clip=3, frames=[0])
