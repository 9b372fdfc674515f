"""SoM marks: they land inside the given boxes/masks, labels are distinct, masks decode from COCO forms."""

from __future__ import annotations

import numpy as np
import pytest

from p4d.errors import ConfigError
from p4d.video import resize_frames, sample_clip, write_synthetic_video
from p4d.video.marks import PALETTE, Region, decode_rle, draw_marks, polygon_mask


@pytest.fixture(scope="module")
def real_frame(tmp_path_factory) -> np.ndarray:
    """First frame of a real H.264 file, 320x240."""
    path = write_synthetic_video(tmp_path_factory.mktemp("marks") / "v.mp4", num_frames=4, fps=8, size=(320, 240), seed=3)
    return sample_clip(path, num_frames=1).frames[0]


def _disk(shape, centre, radius):
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return (yy - centre[0]) ** 2 + (xx - centre[1]) ** 2 <= radius ** 2


def test_box_marks_stay_inside_the_box(real_frame):
    box = (40, 30, 140, 110)  # x0, y0, x1, y1 (exclusive)
    out, (layout,) = draw_marks(real_frame, [Region(label="obj_1", box=box)])
    changed = np.any(out != real_frame, axis=2)
    inside = np.zeros(changed.shape, bool)
    inside[30:110, 40:140] = True
    assert changed.any()
    assert not (changed & ~inside).any()
    # the outline runs along all four edges of the box in the region's colour
    for y, x in [(30, 90), (109, 90), (70, 40), (70, 139)]:
        assert tuple(out[y, x]) == PALETTE[0]
    x0, y0, x1, y1 = layout.tag_box
    assert layout.tag_inside and 40 < x0 < x1 <= 140 and 30 < y0 < y1 <= 110
    assert layout.number == 1


def test_mask_marks_stay_inside_the_mask(real_frame):
    mask = _disk(real_frame.shape[:2], (120, 200), 50)
    out, (layout,) = draw_marks(real_frame, [Region(label="<obj_2>", mask=mask)])
    changed = np.any(out != real_frame, axis=2)
    assert changed.any() and not (changed & ~mask).any()
    x0, y0, x1, y1 = layout.tag_box
    assert layout.tag_inside and mask[y0:y1, x0:x1].all()
    assert layout.number == 2 and layout.color == PALETTE[1]
    # the mask's boundary (pixels with an outside 4-neighbour) is outlined in the colour
    boundary = mask & ~(np.roll(mask, 1, 0) & np.roll(mask, -1, 0) & np.roll(mask, 1, 1) & np.roll(mask, -1, 1))
    assert np.all(out[boundary] == PALETTE[1])


def test_several_regions_get_distinct_labels_and_are_deterministic(real_frame):
    regions = [
        Region(label="obj_1", box=(10, 10, 110, 100)),
        Region(label="obj_2", box=(60, 50, 200, 160)),  # overlaps obj_1
        Region(label="obj_12", mask=_disk(real_frame.shape[:2], (170, 250), 45)),  # 12 would reuse obj_2's colour
    ]
    out, layouts = draw_marks(real_frame, regions)
    again, _ = draw_marks(real_frame, regions)
    assert np.array_equal(out, again)
    assert [m.number for m in layouts] == [1, 2, 12]
    assert len({m.color for m in layouts}) == 3
    crops = []
    for m in layouts:
        x0, y0, x1, y1 = m.tag_box
        assert m.tag_inside
        crops.append(out[y0:y1, x0:x1])
    # tags do not overlap each other
    boxes = [m.tag_box for m in layouts]
    for i in range(3):
        for j in range(i + 1, 3):
            a, b = boxes[i], boxes[j]
            assert a[2] <= b[0] or b[2] <= a[0] or a[3] <= b[1] or b[3] <= a[1]
    # the ink patterns differ: tags 1 and 2 have equal size but different digit pixels; 12 is wider
    ink = [np.all(c == c[c.shape[0] // 2, 1], axis=2) for c in crops]  # True where the tag fill colour is
    assert ink[0].shape == ink[1].shape and not np.array_equal(ink[0], ink[1])
    assert ink[2].shape[1] > ink[0].shape[1]


def test_labels_stay_readable_after_resizing_to_448():
    frame = np.full((900, 1600, 3), 90, np.uint8)
    out, (layout,) = draw_marks(frame, [Region(label="obj_7", box=(100, 100, 700, 600))])
    x0, y0, x1, y1 = layout.tag_box
    small = resize_frames(out[None], (448, 448))[0]
    sy, sx = 448 / 900, 448 / 1600
    assert (y1 - y0) * sy >= 14 and (x1 - x0) * sx >= 8  # a digit keeps >= ~2 px strokes at 448 px
    tag = small[int(np.ceil(y0 * sy)) + 1: int(y1 * sy) - 1, int(np.ceil(x0 * sx)) + 1: int(x1 * sx) - 1]
    # colour 7 is blue: white digits survive the downscale as bright pixels on the blue tag
    assert (tag.min(axis=2) > 200).sum() >= 10


def test_region_too_small_for_a_tag_gets_it_outside_and_says_so():
    frame = np.zeros((120, 160, 3), np.uint8)
    out, (layout,) = draw_marks(frame, [Region(label="obj_1", box=(50, 60, 56, 66))])
    assert not layout.tag_inside
    x0, y0, x1, y1 = layout.tag_box
    assert y1 <= 60  # above the box
    assert 0 <= x0 < x1 <= 160


def test_decode_rle_list_and_compressed_string():
    # 3x2 mask (h=3, w=2), column-major: column 0 = [0, 0, 1], column 1 = [1, 1, 0]
    expected = np.array([[0, 1], [0, 1], [1, 0]], bool)
    assert np.array_equal(decode_rle({"size": [3, 2], "counts": [2, 3, 1]}), expected)
    # compressed (COCO): value v -> chr(48 + v) while 0 <= v < 16; from the 4th run on, the difference
    # to the run two before is stored. Runs [3, 2, 5, 4] -> "3", "2", "5", 4 - 2 = 2 -> "2".
    m = decode_rle({"size": [2, 7], "counts": "3252"})
    assert m.T.reshape(-1).tolist() == [0] * 3 + [1] * 2 + [0] * 5 + [1] * 4  # back to column-major
    # negative difference: runs [3, 5, 2, 1]: 1 - 5 = -4 -> low 5 bits 0b11100 = 28 (sign bit 0x10 set,
    # no continuation) -> chr(48 + 28) = "L"
    m = decode_rle({"size": [1, 11], "counts": "352L"})
    assert m.T.reshape(-1).tolist() == [0] * 3 + [1] * 5 + [0] * 2 + [1]
    m = decode_rle({"size": [6, 7], "counts": "X12"})  # runs [40, 2]
    assert m.T.reshape(-1).tolist() == [0] * 40 + [1] * 2
    with pytest.raises(ConfigError, match="expected h\\*w = 6"):
        decode_rle({"size": [2, 3], "counts": [1, 1]})


def test_polygon_mask_forms_agree_with_the_rectangle():
    expected = np.zeros((20, 30), bool)
    expected[5:11, 4:16] = True  # PIL fills boundary pixels: x 4..15, y 5..10
    flat = [4, 5, 15, 5, 15, 10, 4, 10]
    pairs = [[4, 5], [15, 5], [15, 10], [4, 10]]
    assert np.array_equal(polygon_mask(flat, (20, 30)), expected)
    assert np.array_equal(polygon_mask(pairs, (20, 30)), expected)
    assert np.array_equal(polygon_mask([flat], (20, 30)), expected)
    with pytest.raises(ConfigError, match="at least 3"):
        polygon_mask([1, 2, 3, 4], (20, 30))


def test_bad_regions_are_refused():
    with pytest.raises(ConfigError, match="exactly one of box or mask"):
        Region(label="obj_1", box=(0, 0, 4, 4), mask=np.ones((4, 4), bool))
    frame = np.zeros((10, 10, 3), np.uint8)
    with pytest.raises(ConfigError, match="does not match the frame"):
        draw_marks(frame, [Region(label="obj_1", mask=np.ones((4, 4), bool))])
    with pytest.raises(ConfigError, match="is empty"):
        draw_marks(frame, [Region(label="obj_1", box=(5, 5, 5, 9))])
