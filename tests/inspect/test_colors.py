"""Colour codings: flow wheel hues (hand-computed table), depth colormap, motion overlay, rays."""

import math

import matplotlib
import numpy as np
import pytest

from p4d.errors import ConfigError
from p4d.inspect.colors import (
    colorbar,
    depth_range,
    depth_to_rgb,
    flow_legend,
    flow_to_rgb,
    flow_wheel,
    motion_overlay,
    ray_directions_rgb,
    sigmoid,
    upsample_nearest,
)


def _unit(deg: float) -> tuple[float, float]:
    """Flow (u, v) of unit length at screen angle ``deg`` (clockwise from +x, y down)."""
    return math.cos(math.radians(deg)), math.sin(math.radians(deg))


# Baker et al. wheel (55 colours: RY 15, YG 6, GC 4, CB 11, BM 13, MR 6), position k = θ/360° · 54.
# Pure colours sit at k = 0, 15, 21, 25, 36, 49 → θ = 0°, 100°, 140°, 166.67°, 240°, 326.67°.
# Between entries: down θ=90° → k=13.5 in RY → G = 13.5/15·255 = 229.5; left θ=180° → k=27 =
# CB entry 2 → G = 255·(1 − 2/11) = 208.6; up θ=270° → k=40.5 = BM 4.5 → R = 4.5/13·255 = 88.3.
HUE_TABLE = [
    ("right", (1.0, 0.0), (255, 0, 0)),
    ("down", (0.0, 1.0), (255, 229.5, 0)),
    ("100 deg", _unit(100), (255, 255, 0)),
    ("140 deg", _unit(140), (0, 255, 0)),
    ("166.67 deg", _unit(180 * 25 / 27), (0, 255, 255)),
    ("left", (-1.0, 0.0), (0, 208.6, 255)),
    ("240 deg", _unit(240), (0, 0, 255)),
    ("up", (0.0, -1.0), (88.3, 0, 255)),
    ("326.67 deg", _unit(180 * 49 / 27), (255, 0, 255)),
]


@pytest.mark.parametrize("name,flow,rgb", HUE_TABLE, ids=[t[0] for t in HUE_TABLE])
def test_flow_wheel_hues_at_full_magnitude(name, flow, rgb):
    got = flow_to_rgb(np.array([flow]) * 3.0, max_magnitude=3.0)[0]
    np.testing.assert_allclose(got, rgb, atol=1.0)


def test_flow_saturation_scales_with_magnitude_and_zero_is_white():
    flows = np.array([[0.0, 0.0], [1.0, 0.0], [2.0, 0.0], [4.0, 0.0]])
    got = flow_to_rgb(flows, max_magnitude=2.0).astype(int)
    assert got[0].tolist() == [255, 255, 255]
    assert got[1].tolist() == [255, 128, 128]  # half saturation: 1 - 0.5·(1 - 0) = 0.5 for G, B
    assert got[2].tolist() == [255, 0, 0]
    assert got[3].tolist() == [191, 0, 0]  # beyond the rim: 75 % of the wheel colour


def test_flow_default_scale_is_the_largest_magnitude():
    flows = np.array([[0.0, 5.0], [0.0, 2.5]])
    np.testing.assert_array_equal(flow_to_rgb(flows), flow_to_rgb(flows, max_magnitude=5.0))


def test_flow_wheel_has_55_colours_and_the_six_pure_ones():
    wheel = flow_wheel()
    assert wheel.shape == (55, 3)
    for k, rgb in {0: (255, 0, 0), 15: (255, 255, 0), 21: (0, 255, 0), 25: (0, 255, 255), 36: (0, 0, 255),
                   49: (255, 0, 255)}.items():
        np.testing.assert_allclose(wheel[k], rgb)


def test_flow_legend_is_the_wheel_drawn_on_a_disc():
    img = flow_legend(65)  # centre at (32, 32), radius 32
    assert img.shape == (65, 65, 3)
    assert img[32, 32].tolist() == [255, 255, 255]  # zero flow
    np.testing.assert_allclose(img[32, 64], (255, 0, 0), atol=1)  # rightmost: red
    np.testing.assert_allclose(img[64, 32], (255, 229.5, 0), atol=1)  # bottom: flow pointing down
    assert img[0, 0].tolist() == [255, 255, 255]  # outside the disc


def test_flow_rejects_a_wrong_last_axis():
    with pytest.raises(ConfigError, match=r"\(\.\.\., 2\)"):
        flow_to_rgb(np.zeros((4, 4, 3)))


def test_depth_colormap_matches_matplotlib_and_clips():
    cmap = matplotlib.colormaps["turbo_r"]
    depth = np.array([[1.0], [2.0], [3.0], [0.5], [9.0]])
    got = depth_to_rgb(depth, 1.0, 3.0)
    want = (np.asarray(cmap([0.0, 0.5, 1.0, 0.0, 1.0]))[:, :3] * 255)
    np.testing.assert_allclose(got, want, atol=2)
    bar = colorbar(50, 3)
    assert bar.shape == (3, 50, 3)
    np.testing.assert_allclose(bar[0, 0], want[0], atol=2)  # left end = vmin = near
    np.testing.assert_allclose(bar[0, -1], want[2], atol=2)


def test_depth_range_is_robust_and_handles_constant_depth():
    d = np.concatenate([np.linspace(1, 2, 1000), [1000.0]])
    lo, hi = depth_range(d)
    assert 1.0 <= lo < 1.05 and 1.95 < hi <= 2.0
    assert depth_range(np.full(10, 4.0)) == (3.5, 4.5)


def test_motion_overlay_blends_red_by_the_sigmoid():
    frames = np.full((1, 1, 3, 3), 100, np.uint8)
    logits = np.array([[[[-50.0], [0.0], [50.0]]]])
    out = motion_overlay(frames, logits)
    assert out[0, 0, 0].tolist() == [100, 100, 100]  # sigmoid ≈ 0: the frame
    assert out[0, 0, 1].tolist() == [int(round(0.7 * 100 + 0.3 * 255)), 70, 70]  # α·p = 0.3
    assert out[0, 0, 2].tolist() == [int(round(0.4 * 100 + 0.6 * 255)), 40, 40]  # α·p = 0.6
    assert sigmoid(np.array([-1000.0, 1000.0])).tolist() == [0.0, 1.0]


def test_ray_directions_as_rgb():
    rays = np.array([[1, 0, 0, 9, 9, 9], [0, 0, -2, 0, 0, 0], [0, 0, 0, 1, 1, 1]], float)
    assert ray_directions_rgb(rays).tolist() == [[255, 128, 128], [128, 128, 0], [128, 128, 128]]


def test_upsample_nearest_repeats_cells():
    grid = np.arange(4).reshape(2, 2, 1)
    up = upsample_nearest(grid, 4, 6)[..., 0]
    assert up.tolist() == [[0, 0, 0, 1, 1, 1], [0, 0, 0, 1, 1, 1], [2, 2, 2, 3, 3, 3], [2, 2, 2, 3, 3, 3]]
