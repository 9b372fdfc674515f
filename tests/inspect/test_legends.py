"""Legends say what the colours mean: flow wheel direction labels, depth caption vs colorbar ends."""

import numpy as np

from p4d.inspect.colors import depth_range, flow_legend, flow_to_rgb
from p4d.inspect.panels import LINE_HEIGHT, depth_tiles, labelled_wheel, text_width


def ink(region: np.ndarray) -> int:
    return int((region.max(axis=-1) < 120).sum())   # dark grey to black: text, not the bright wheel


def test_flow_wheel_labels_sit_beside_the_rim_colour_of_that_direction():
    size = 97
    wheel = flow_legend(size)
    img = labelled_wheel(wheel)
    side = text_width("right") + 4
    top, left = LINE_HEIGHT, side
    c = size // 2
    directions = {"right": (1.0, 0.0), "left": (-1.0, 0.0), "down": (0.0, 1.0), "up": (0.0, -1.0)}
    rim = {"right": (c, size - 2), "left": (c, 1), "down": (size - 2, c), "up": (1, c)}
    label_box = {"right": img[top + c - 8:top + c + 8, left + size:], "left": img[top + c - 8:top + c + 8, :left],
                 "down": img[top + size:, left + c - 20:left + c + 20], "up": img[:top, left + c - 20:left + c + 20]}
    for name, (u, v) in directions.items():
        expected = flow_to_rgb(np.array([[[[u * c, v * c]]]]), max_magnitude=c)[0, 0, 0]
        y, x = rim[name]
        np.testing.assert_allclose(img[top + y, left + x].astype(int), expected.astype(int), atol=12)
        assert ink(label_box[name]) > 10, name          # the word is written on that side
    assert ink(img[top:top + size, left:left + size]) < 30   # the wheel itself is not covered by text


def test_depth_caption_agrees_with_the_colorbar_ends():
    rng = np.random.default_rng(0)
    depth = rng.uniform(1.0, 9.0, (2, 16, 16, 1)).astype(np.float32)
    depth[0, 0, 0, 0] = 100.0                          # an outlier beyond the bar's upper end
    _, legend = depth_tiles(depth)
    lo, hi = depth_range(depth)
    assert hi < 10 < 100                               # the bar ends at the 98th percentile, not at the max
    # the caption names the percentile rule and the data range; the ends below the bar are lo and hi
    from p4d.inspect import panels
    captions = []
    real = panels.captioned
    panels.captioned = lambda caption, image, under=None: captions.append((caption, under)) or real(caption, image, under=under)
    try:
        depth_tiles(depth)
    finally:
        panels.captioned = real
    caption, under = captions[0]
    assert "2nd..98th percentile, clipped" in caption and "100" in caption
    assert under == (f"{lo:.4g} (near)", f"{hi:.4g} (far)")
    assert legend.shape[0] > 14
