"""resize_frames: shapes, and content checked on frames whose resized form is known by hand."""

import numpy as np
import pytest

from p4d.errors import ConfigError
from p4d.video import resize_frames


@pytest.mark.parametrize(("src", "size"), [((48, 64), (224, 224)), ((77, 101), (448, 448)), ((120, 160), (30, 17))])
def test_shapes(src, size):
    frames = np.random.default_rng(0).integers(0, 256, size=(3, *src, 3), dtype=np.uint8)
    out = resize_frames(frames, size)
    assert out.shape == (3, *size, 3) and out.dtype == np.uint8


def test_constant_frames_stay_constant():
    frames = np.zeros((2, 48, 64, 3), dtype=np.uint8)
    frames[0] = (10, 200, 30)
    frames[1] = (255, 0, 128)
    out = resize_frames(frames, (224, 224))
    assert np.all(out[0] == (10, 200, 30)) and np.all(out[1] == (255, 0, 128))


def test_not_aspect_preserving_halves_stay_halves():
    # left half black, right half white, resized to a square of another aspect: the halves map to halves
    frame = np.zeros((1, 30, 80, 3), dtype=np.uint8)
    frame[:, :, 40:] = 255
    out = resize_frames(frame, (40, 40))[0]
    assert np.all(out[:, :18] == 0) and np.all(out[:, 22:] == 255)
    assert np.all(np.diff(out[0, :, 0].astype(int)) >= 0)  # monotone across the edge (bilinear, no ringing)


def test_frames_of_each_index_stay_in_place():
    frames = np.stack([np.full((8, 8, 3), v, dtype=np.uint8) for v in (0, 50, 100, 150)])
    out = resize_frames(frames, (16, 4))
    assert [int(f[0, 0, 0]) for f in out] == [0, 50, 100, 150]


def test_same_size_is_returned_unchanged():
    frames = np.random.default_rng(1).integers(0, 256, size=(2, 12, 10, 3), dtype=np.uint8)
    assert resize_frames(frames, (12, 10)) is frames


@pytest.mark.parametrize("size", [(0, 10), (10, -1), (10,), "224"])
def test_bad_size(size):
    with pytest.raises(ConfigError, match="size"):
        resize_frames(np.zeros((1, 8, 8, 3), dtype=np.uint8), size)


def test_bad_frames():
    with pytest.raises(ConfigError, match=r"\(N, H, W, 3\) uint8"):
        resize_frames(np.zeros((8, 8, 3), dtype=np.uint8), (4, 4))
